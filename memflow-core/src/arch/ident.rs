//! [`ArchitectureIdent`] and the one table of supported MMU modes it is generated from.
//!
//! Each row of the table gives a mode its variant, its stable C code (`= N`: the `MF_ARCH_*`
//! value in the C API, checked against [`ArchitectureIdent::code`] at compile time; not the
//! enum's Rust tag, which the plugin ABI fixes by declaration order), its names for plugin
//! arguments (`dummy:arch=`), the ELF machine of code running in it and the Rust
//! `target_arch` of such code (to recognise the host). A mode with parameters gives each a
//! default, used where only a name or a code is known. Everything else that needs a
//! per-mode fact derives it from here or matches exhaustively on the enum.

use goblin::elf::header::{EM_386, EM_AARCH64, EM_RISCV, EM_X86_64};

macro_rules! architectures {
    (
        $(#[$meta:meta])* $name:ident {
            $(
                $(#[$vmeta:meta])*
                $variant:ident $({ $($(#[$fmeta:meta])* $field:ident: $fty:ty = $default:literal),+ $(,)? })?
                    = $code:literal, names [$($arg:literal),+], elf $machine:ident, target_arch $target:literal;
            )+
        }
    ) => {
        $(#[$meta])*
        #[repr(C, u8)]
        #[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant $({ $($(#[$fmeta])* $field: $fty),+ })?,)+
        }

        impl $name {
            /// Every mode of the table once, in code order; a mode with parameters in its
            /// default shape.
            pub const ALL: &'static [$name] = &[$(Self::$variant $({ $($field: $default),+ })?,)+];

            /// The stable C code of the mode (its `MF_ARCH_*` constant); never 0.
            pub const fn code(self) -> u32 {
                match self {
                    $(Self::$variant { .. } => $code,)+
                }
            }

            /// The mode of a C code, with its parameters (if any) at their defaults; `None`
            /// for an unknown code.
            pub const fn from_code(code: u32) -> Option<Self> {
                match code {
                    $($code => Some(Self::$variant $({ $($field: $default),+ })?),)+
                    _ => None,
                }
            }

            /// The names plugin arguments give the mode (`dummy:arch=`), the usual one first.
            /// Each names the mode with its parameters (if any) at their defaults.
            pub const fn arg_names(self) -> &'static [&'static str] {
                match self {
                    $(Self::$variant { .. } => &[$($arg),+],)+
                }
            }

            /// The ELF machine (`e_machine`) of code running in the mode.
            pub const fn elf_machine(self) -> u16 {
                match self {
                    $(Self::$variant { .. } => $machine,)+
                }
            }

            /// The Rust `target_arch` (as in `std::env::consts::ARCH`) of code running in the
            /// mode.
            pub const fn target_arch(self) -> &'static str {
                match self {
                    $(Self::$variant { .. } => $target,)+
                }
            }
        }
    };
}

architectures! {
    /// Names an MMU mode. `#[repr(C, u8)]`, so it crosses plugin and C boundaries as it is.
    ArchitectureIdent {
        /// 32-bit x86 paging: 2 levels of 4-byte entries, 4 MiB pages (PSE), no NX.
        X86_32 = 1, names ["x86"], elf EM_386, target_arch "x86";
        /// x86 PAE paging: 3 levels of 8-byte entries over a 32-bit space, 2 MiB pages, NX.
        X86Pae = 2, names ["pae"], elf EM_386, target_arch "x86";
        /// x86-64 4-level paging: 48-bit canonical addresses, 2 MiB and 1 GiB pages.
        X86_64 = 3, names ["x64"], elf EM_X86_64, target_arch "x86_64";
        /// x86-64 5-level paging (LA57): 57-bit canonical addresses, 2 MiB and 1 GiB pages.
        X86_64La57 = 4, names ["la57"], elf EM_X86_64, target_arch "x86_64";
        /// AArch64 stage 1 translation with a 4 KiB (`granule_log2` 12), 16 KiB (14) or 64 KiB (16)
        /// granule and `va_bits` of input address (25 to 52; 39, 48 and 52 are the common ones), with
        /// TTBR0 for the low and TTBR1 for the high range. Above 48 bits, output addresses have 52
        /// bits (FEAT_LPA2's descriptors with 4 and 16 KiB granules, FEAT_LPA's with 64 KiB).
        AArch64 {
            /// log2 of the granule (page) size: 12, 14 or 16.
            granule_log2: u8 = 12,
            /// Input address bits per range (64 - T0SZ), 25 to 52.
            va_bits: u8 = 48,
        } = 5, names ["aarch64"], elf EM_AARCH64, target_arch "aarch64";
        /// RISC-V Sv39: 3 levels, 39-bit sign-extended addresses, leaves at any level.
        RiscVSv39 = 6, names ["sv39"], elf EM_RISCV, target_arch "riscv64";
        /// RISC-V Sv48: 4 levels, 48-bit sign-extended addresses, leaves at any level.
        RiscVSv48 = 7, names ["sv48", "riscv"], elf EM_RISCV, target_arch "riscv64";
        /// RISC-V Sv57: 5 levels, 57-bit sign-extended addresses, leaves at any level.
        RiscVSv57 = 8, names ["sv57"], elf EM_RISCV, target_arch "riscv64";
    }
}

impl ArchitectureIdent {
    /// The mode a plugin argument names (see [`Self::arg_names`]), or `None`.
    pub fn from_arg_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|a| a.arg_names().contains(&name))
    }
}
