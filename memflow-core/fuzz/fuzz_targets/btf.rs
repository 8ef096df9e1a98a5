//! BTF parsing and member lookup on arbitrary sections: parse, resolve the layer's whole
//! layout, and ask every type for its size, array shape and a few members. Everything must
//! return; a layout that resolves has every record span within the limits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use memflow_core::os::linux::{limits, Btf, Layout, TypeId};

fuzz_target!(|section: &[u8]| {
    let Ok(btf) = Btf::parse(section) else { return };
    if let Ok(layout) = Layout::from_btf(&btf) {
        assert!(layout.task.span.end - layout.task.span.start <= limits::MAX_RECORD_BYTES);
        assert!(layout.task.comm_len <= limits::MAX_NAME_ARRAY);
    }
    for id in (0..=btf.type_count() as u32).take(256).map(TypeId) {
        let _ = (btf.size_of(id), btf.array(id), btf.resolve(id));
        for name in ["comm", "tasks", "", "a"] {
            let _ = btf.member(id, name);
        }
    }
    for (structure, path) in [("task_struct", "comm"), ("mm_struct", "mm_mt.ma_root"), ("a", "b.c")] {
        let _ = btf.member_path(structure, path);
        let _ = btf.struct_size(structure);
    }
});
