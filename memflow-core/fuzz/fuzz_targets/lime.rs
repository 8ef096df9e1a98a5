//! The LiME parser on arbitrary bytes: it must return, never panic, and only map bytes that
//! exist.
#![no_main]

use libfuzzer_sys::fuzz_target;
use memflow_core::connector::lime;

fuzz_target!(|data: &[u8]| {
    if let Ok(map) = lime::parse(data) {
        for r in map.ranges() {
            assert!(r.backing + r.size <= data.len() as _);
        }
    }
});
