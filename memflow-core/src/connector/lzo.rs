//! An LZO1X decompressor for untrusted input (makedumpfile's `-l` pages).
//!
//! The stream is a sequence of instructions; each copies a run of literals from the input or
//! a match from earlier output, and the low two bits of most instructions say how many
//! literals (0 to 3) follow before the next instruction. What an instruction byte below 16
//! means depends on the literals copied just before it: none (a long literal run), 1 to 3
//! (a 2-byte match within 1 KiB) or 4 and more (a 3-byte match 2 to 3 KiB back). The stream
//! ends with an `M4` match of distance 0x4000 (`0x11 0x00 0x00`).
//!
//! Written for hostile input: every read and write is bounds-checked, output never grows past
//! the caller's buffer, and run lengths are bounded by the input that encodes them.

/// Why a stream could not be decompressed.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum LzoError {
    /// The input ended inside an instruction or before the end marker.
    InputOverrun,
    /// The output would exceed the buffer.
    OutputOverrun,
    /// A match points before the start of the output.
    LookBehind,
    /// Bytes follow the end marker.
    TrailingInput,
}

impl core::fmt::Display for LzoError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            LzoError::InputOverrun => "the LZO stream ends early",
            LzoError::OutputOverrun => "the LZO stream decompresses to more bytes than expected",
            LzoError::LookBehind => "an LZO match points before the start of the output",
            LzoError::TrailingInput => "bytes follow the end of the LZO stream",
        })
    }
}

struct Decoder<'a> {
    input: &'a [u8],
    ip: usize,
    out: &'a mut [u8],
    op: usize,
}

impl Decoder<'_> {
    fn byte(&mut self) -> Result<usize, LzoError> {
        let b = *self.input.get(self.ip).ok_or(LzoError::InputOverrun)?;
        self.ip += 1;
        Ok(usize::from(b))
    }

    /// A length field: `value` if non-zero, else `base` plus 255 per zero byte plus the first
    /// non-zero byte.
    fn length(&mut self, value: usize, base: usize) -> Result<usize, LzoError> {
        if value != 0 {
            return Ok(value);
        }
        let mut len = base;
        loop {
            match self.byte()? {
                0 => len += 255,
                b => return Ok(len + b),
            }
        }
    }

    fn literals(&mut self, n: usize) -> Result<(), LzoError> {
        let src = self.input.get(self.ip..self.ip + n).ok_or(LzoError::InputOverrun)?;
        let dst = self.out.get_mut(self.op..self.op + n).ok_or(LzoError::OutputOverrun)?;
        dst.copy_from_slice(src);
        self.ip += n;
        self.op += n;
        Ok(())
    }

    /// Copies `len` bytes from `dist` bytes back; source and destination may overlap (a
    /// repeating pattern), so byte by byte when they do.
    fn copy_match(&mut self, dist: usize, len: usize) -> Result<(), LzoError> {
        let from = self.op.checked_sub(dist).ok_or(LzoError::LookBehind)?;
        if self.out.len() - self.op < len {
            return Err(LzoError::OutputOverrun);
        }
        if dist >= len {
            self.out.copy_within(from..from + len, self.op);
        } else {
            for i in 0..len {
                self.out[self.op + i] = self.out[from + i];
            }
        }
        self.op += len;
        Ok(())
    }

    /// The distance's low byte (whose two low bits count the literals that follow) and high
    /// byte of an `M3` or `M4` match: `(distance part, trailing literals)`.
    fn distance16(&mut self) -> Result<(usize, usize), LzoError> {
        let lo = self.byte()?;
        let hi = self.byte()?;
        Ok(((lo >> 2) + (hi << 6), lo & 3))
    }
}

/// Decompresses the LZO1X stream `input` into `out`; returns the number of bytes written.
pub fn decompress(input: &[u8], out: &mut [u8]) -> Result<usize, LzoError> {
    let mut d = Decoder { input, ip: 0, out, op: 0 };
    // Literals copied by the previous instruction: 0, 1 to 3, or 4 for "4 or more".
    let mut state = 0;
    if let Some(&first) = input.first() {
        if first > 17 {
            d.ip = 1;
            let n = usize::from(first) - 17;
            d.literals(n)?;
            state = n.min(4);
        }
    }
    loop {
        let t = d.byte()?;
        let (dist, len, trailing) = if t >= 64 {
            // M2: 3 to 8 bytes within 2 KiB.
            let dist = 1 + ((t >> 2) & 7) + (d.byte()? << 3);
            (dist, (t >> 5) + 1, t & 3)
        } else if t >= 32 {
            // M3: within 16 KiB.
            let len = d.length(t & 31, 31)? + 2;
            let (dist, trailing) = d.distance16()?;
            (dist + 1, len, trailing)
        } else if t >= 16 {
            // M4: 16 to 48 KiB back; distance 0 marks the end.
            let len = d.length(t & 7, 7)? + 2;
            let (dist, trailing) = d.distance16()?;
            let dist = ((t & 8) << 11) + dist;
            if dist == 0 {
                break;
            }
            (dist + 0x4000, len, trailing)
        } else if state == 0 {
            let n = d.length(t, 15)? + 3;
            d.literals(n)?;
            state = 4;
            continue;
        } else if state == 4 {
            (1 + 0x800 + (t >> 2) + (d.byte()? << 2), 3, t & 3)
        } else {
            (1 + (t >> 2) + (d.byte()? << 2), 2, t & 3)
        };
        d.copy_match(dist, len)?;
        d.literals(trailing)?;
        state = trailing;
    }
    if d.ip != input.len() {
        return Err(LzoError::TrailingInput);
    }
    Ok(d.op)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip(data: &[u8]) {
        let packed = lzokay_native::compress(data).unwrap();
        let mut out = vec![0u8; data.len()];
        assert_eq!(decompress(&packed, &mut out), Ok(data.len()));
        assert_eq!(out, data);
        // One byte less room: refused, not truncated silently.
        if !data.is_empty() {
            assert_eq!(decompress(&packed, &mut out[..data.len() - 1]), Err(LzoError::OutputOverrun));
        }
    }

    #[test]
    fn decodes_what_an_independent_encoder_wrote() {
        round_trip(b"a");
        round_trip(&[0u8; 4096]);
        let text: Vec<u8> =
            (0..20000u32).flat_map(|i| format!("line {} of {}\n", i % 97, i % 13).into_bytes()).collect();
        round_trip(&text);
        let noise: Vec<u8> = (0..70000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
        round_trip(&noise);
    }

    #[test]
    fn hostile_streams_fail_cleanly() {
        let mut out = [0u8; 64];
        assert_eq!(decompress(&[], &mut out), Err(LzoError::InputOverrun));
        // A match before any output.
        assert_eq!(decompress(&[0x11, 0x04, 0x00], &mut out), Err(LzoError::LookBehind));
        // Literals running past the input.
        assert_eq!(decompress(&[0xff, 1, 2], &mut out), Err(LzoError::InputOverrun));
        // A long zero run: bounded by the input, stops at its end.
        assert_eq!(decompress(&[0x00; 100], &mut out), Err(LzoError::InputOverrun));
        // End marker followed by garbage.
        assert_eq!(decompress(&[0x11, 0, 0, 7], &mut out), Err(LzoError::TrailingInput));
        assert_eq!(decompress(&[0x11, 0, 0], &mut out), Ok(0));
    }

    proptest! {
        #[test]
        fn random_input_never_panics(input in proptest::collection::vec(any::<u8>(), 0..600)) {
            let mut out = [0u8; 4096];
            if let Ok(n) = decompress(&input, &mut out) {
                prop_assert!(n <= out.len());
            }
        }

        #[test]
        fn round_trips_random_pages(seed in any::<u64>(), runs in 1usize..40) {
            // Pages that compress: runs of repeated and random bytes.
            let mut data = Vec::new();
            let mut x = seed | 1;
            for _ in 0..runs {
                x ^= x << 13; x ^= x >> 7; x ^= x << 17;
                let len = (x % 300) as usize;
                if x & 1 == 0 { data.extend(std::iter::repeat_n((x >> 8) as u8, len)); }
                else { data.extend((0..len).map(|i| (x >> (i % 56)) as u8)); }
            }
            round_trip(&data);
        }
    }
}
