//! The codecs of compressed dumps (zlib, LZO1X, Snappy, zstd), each decompressing one stored
//! block into a buffer of exactly the block's size, and (all but LZO) compressing one for the
//! dump writers.
//!
//! A block that decompresses to fewer or more bytes than its size is an error: the output
//! never grows past the buffer, so a decompression bomb costs at most one block of work.

use super::lzo;

/// How a block is stored.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Codec {
    /// Uncompressed bytes.
    Stored,
    /// A zlib stream (RFC 1950), as `compress2` writes.
    Zlib,
    /// An LZO1X stream.
    Lzo,
    /// Snappy's raw (unframed) format.
    Snappy,
    /// A zstd frame.
    Zstd,
}

impl Codec {
    /// The codec's name in messages.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Stored => "uncompressed",
            Codec::Zlib => "zlib",
            Codec::Lzo => "LZO",
            Codec::Snappy => "snappy",
            Codec::Zstd => "zstd",
        }
    }
}

/// Decompression state kept between blocks (one per reader: it is not shared).
#[derive(Default)]
pub struct Decompressors {
    zlib: Option<flate2::Decompress>,
    zstd: Option<zstd::bulk::Decompressor<'static>>,
    snappy: snap::raw::Decoder,
}

impl core::fmt::Debug for Decompressors {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Decompressors")
    }
}

impl Decompressors {
    /// Decompresses `input` stored with `codec` into all of `out`. The error says what was
    /// wrong with the input.
    pub fn decompress(&mut self, codec: Codec, input: &[u8], out: &mut [u8]) -> Result<(), String> {
        let want = out.len();
        let got = match codec {
            Codec::Stored => {
                if input.len() != want {
                    return Err(format!("{:#x} stored bytes for a block of {want:#x}", input.len()));
                }
                out.copy_from_slice(input);
                want
            }
            Codec::Zlib => {
                let z = self.zlib.get_or_insert_with(|| flate2::Decompress::new(true));
                z.reset(true);
                let status = z.decompress(input, out, flate2::FlushDecompress::Finish).map_err(|e| e.to_string())?;
                if status != flate2::Status::StreamEnd {
                    return Err(format!("the zlib stream does not end within {want:#x} output bytes"));
                }
                z.total_out() as usize
            }
            Codec::Lzo => lzo::decompress(input, out).map_err(|e| e.to_string())?,
            Codec::Snappy => {
                let len = snap::raw::decompress_len(input).map_err(|e| e.to_string())?;
                if len != want {
                    return Err(format!("the snappy block says it holds {len:#x} bytes"));
                }
                self.snappy.decompress(input, out).map_err(|e| e.to_string())?
            }
            Codec::Zstd => {
                let z = match &mut self.zstd {
                    Some(z) => z,
                    None => self.zstd.insert(zstd::bulk::Decompressor::new().map_err(|e| e.to_string())?),
                };
                z.decompress_to_buffer(input, out).map_err(|e| format!("zstd: {e}"))?
            }
        };
        if got != want {
            return Err(format!("{} data decompresses to {got:#x} bytes instead of {want:#x}", codec.name()));
        }
        Ok(())
    }
}

/// Compression state kept between blocks (one per writer).
pub struct Compressors {
    zlib: Option<flate2::Compress>,
    zstd: Option<zstd::bulk::Compressor<'static>>,
    snappy: snap::raw::Encoder,
}

impl Default for Compressors {
    fn default() -> Self {
        Compressors { zlib: None, zstd: None, snappy: snap::raw::Encoder::new() }
    }
}

impl Compressors {
    /// The zstd level: the fastest of the regular levels, as dumps are written while the
    /// source waits.
    const ZSTD_LEVEL: i32 = 1;

    /// Compresses `input` with `codec` into `out` (cleared first; `Stored` copies it). LZO
    /// has no compressor outside the tests.
    pub fn compress(&mut self, codec: Codec, input: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        out.clear();
        match codec {
            Codec::Zlib => {
                let z = self.zlib.get_or_insert_with(|| flate2::Compress::new(flate2::Compression::fast(), true));
                z.reset();
                // Well above zlib's bound (`compressBound`): zlib-rs's fastest level, which
                // stores incompressible input in small blocks, may need more than the bound.
                out.reserve(2 * input.len() + 64);
                let status =
                    z.compress_vec(input, out, flate2::FlushCompress::Finish).map_err(|e| format!("zlib: {e}"))?;
                if status != flate2::Status::StreamEnd {
                    return Err("zlib: the stream did not end within its bound".into());
                }
            }
            Codec::Snappy => {
                out.resize(snap::raw::max_compress_len(input.len()), 0);
                let n = self.snappy.compress(input, out).map_err(|e| format!("snappy: {e}"))?;
                out.truncate(n);
            }
            Codec::Zstd => {
                let z = match &mut self.zstd {
                    Some(z) => z,
                    None => self
                        .zstd
                        .insert(zstd::bulk::Compressor::new(Self::ZSTD_LEVEL).map_err(|e| format!("zstd: {e}"))?),
                };
                out.reserve(zstd::zstd_safe::compress_bound(input.len()));
                z.compress_to_buffer(input, out).map_err(|e| format!("zstd: {e}"))?;
            }
            Codec::Stored => out.extend_from_slice(input),
            // The only LZO1X encoder at hand is a dev-dependency: LZO dumps are built for the
            // reader's tests only.
            #[cfg(test)]
            Codec::Lzo => *out = lzokay_native::compress(input).map_err(|e| format!("lzo: {e:?}"))?,
            #[cfg(not(test))]
            Codec::Lzo => return Err("no LZO compressor".into()),
        }
        Ok(())
    }
}

/// `data` compressed with `codec` by the codec's own crate (test data).
#[cfg(test)]
pub(crate) fn compress(codec: Codec, data: &[u8]) -> Vec<u8> {
    match codec {
        Codec::Stored => data.to_vec(),
        Codec::Zlib => {
            use std::io::Write;
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        Codec::Lzo => lzokay_native::compress(data).unwrap(),
        Codec::Snappy => snap::raw::Encoder::new().compress_vec(data).unwrap(),
        Codec::Zstd => zstd::bulk::compress(data, 3).unwrap(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page() -> Vec<u8> {
        (0..4096u32).map(|i| (i / 7 % 251) as u8).collect()
    }

    const ALL: [Codec; 5] = [Codec::Stored, Codec::Zlib, Codec::Lzo, Codec::Snappy, Codec::Zstd];

    #[test]
    fn every_codec_round_trips_a_page() {
        let mut d = Decompressors::default();
        for codec in ALL {
            let packed = compress(codec, &page());
            let mut out = vec![0u8; 4096];
            d.decompress(codec, &packed, &mut out).unwrap();
            assert_eq!(out, page(), "{codec:?}");
            // Twice: the kept state is reset between blocks.
            out.fill(0);
            d.decompress(codec, &packed, &mut out).unwrap();
            assert_eq!(out, page(), "{codec:?}");
        }
    }

    #[test]
    fn compressors_round_trip_and_refuse_what_they_lack() {
        let mut c = Compressors::default();
        let mut d = Decompressors::default();
        let mut packed = Vec::new();
        for codec in [Codec::Zlib, Codec::Snappy, Codec::Zstd] {
            for input in [page(), vec![0u8; 4096]] {
                c.compress(codec, &input, &mut packed).unwrap();
                assert!(packed.len() < input.len(), "{codec:?} shrinks a patterned page");
                let mut out = vec![0u8; 4096];
                d.decompress(codec, &packed, &mut out).unwrap();
                assert_eq!(out, input, "{codec:?}");
            }
        }
        c.compress(Codec::Stored, &page(), &mut packed).unwrap();
        assert_eq!(packed, page());
    }

    #[test]
    fn bombs_and_short_blocks_are_refused() {
        let mut d = Decompressors::default();
        let big = vec![0u8; 1 << 20];
        for codec in ALL {
            // A block that decompresses to far more than a page.
            let mut out = vec![0u8; 4096];
            assert!(d.decompress(codec, &compress(codec, &big), &mut out).is_err(), "{codec:?} bomb");
            // One that decompresses to less.
            assert!(d.decompress(codec, &compress(codec, &page()[..4000]), &mut out).is_err(), "{codec:?} short");
            // Garbage.
            if codec != Codec::Stored {
                assert!(d.decompress(codec, &[0xff; 37], &mut out).is_err(), "{codec:?} garbage");
            }
        }
    }
}
