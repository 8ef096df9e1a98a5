//! The kallsyms finder on arbitrary kernel images: it must return (found or an error) and
//! what it finds must be sorted by address with names it can look up.
#![no_main]

use libfuzzer_sys::fuzz_target;
use memflow_core::os::linux::Kallsyms;

fuzz_target!(|image: &[u8]| {
    if image.len() > 1 << 20 {
        return;
    }
    if let Ok(k) = Kallsyms::find(image) {
        let syms: Vec<_> = k.iter().collect();
        assert_eq!(syms.len(), k.len());
        assert!(syms.windows(2).all(|w| w[0].address <= w[1].address));
        if let Some(first) = syms.first() {
            assert!(k.lookup(first.name).is_some());
        }
    }
});
