//! Virtual to physical address translation.
//!
//! [`Translator`] (`engine.rs`) is the engine for one address space: an
//! [`Architecture`](crate::arch::Architecture), the table root(s) and a fixed working memory.
//! It translates address lists in windows of [`WINDOW`] addresses that advance one level at a
//! time with one batched physical read per level (see `walk.rs`), and walks ranges depth first
//! through the tree (see `pages.rs`). Neither allocates in proportion to the input;
//! [`Translator::MAX_WORKING_BYTES`] is the bound per clone.
//!
//! [`VirtualTranslate`] is the cglue trait users call; [`crate::virt::VirtualDma`] implements it.
//! [`reference`](mod@reference) is a deliberately simple walker used as the oracle in tests.

mod engine;
mod merge;
mod pages;
mod records;
pub mod reference;
mod tlb;
// cglue generates undocumented items (its `cglue_*` module, opaque types) next to the trait.
#[allow(missing_docs)]
mod virtual_translate;
mod walk;

pub use engine::Translator;
pub(crate) use merge::{PageMapMerger, TranslationMapMerger};
pub use pages::{Page, CHUNK_BYTES};
pub use records::*;
pub use tlb::Tlb;
pub use virtual_translate::*;
pub use walk::WINDOW;

/// Implements [`VirtualTranslate`] for a type by forwarding to one of its fields (an OS or
/// process object that translates through the [`crate::virt::VirtualDma`] it holds).
#[macro_export]
macro_rules! forward_virtual_translate {
    ($ty:ty, $field:ident $(, $($gen:tt)*)?) => {
        impl $(<$($gen)*>)? $crate::translate::VirtualTranslate for $ty {
            fn virt_to_phys_list(
                &mut self,
                addrs: $crate::cglue::iter::CIterator<$crate::types::Address>,
                out: $crate::translate::TranslationCallback,
                out_fail: $crate::translate::FailureCallback,
            ) -> $crate::error::Result<()> {
                self.$field.virt_to_phys_list(addrs, out, out_fail)
            }

            fn virt_page_map_range(
                &mut self,
                gap: $crate::types::umem,
                start: $crate::types::Address,
                end: $crate::types::Address,
                out: $crate::translate::MemoryRangeCallback,
            ) -> $crate::error::Result<()> {
                self.$field.virt_page_map_range(gap, start, end, out)
            }

            fn virt_translation_map_range(
                &mut self,
                start: $crate::types::Address,
                end: $crate::types::Address,
                out: $crate::translate::TranslationRangeCallback,
            ) -> $crate::error::Result<()> {
                self.$field.virt_translation_map_range(start, end, out)
            }
        }
    };
}
