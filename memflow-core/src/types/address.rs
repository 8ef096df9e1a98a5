//! Addresses in any address space (physical or virtual).

use core::fmt;
use core::ops::{Add, AddAssign, BitAnd, Range, Sub, SubAssign};

/// The unsigned integer that holds every address and size.
///
/// `u64` by default; the `128_bit_mem` feature widens it to `u128` for the whole crate.
#[cfg(not(feature = "128_bit_mem"))]
#[allow(non_camel_case_types)]
pub type umem = u64;

/// The unsigned integer that holds every address and size.
#[cfg(feature = "128_bit_mem")]
#[allow(non_camel_case_types)]
pub type umem = u128;

/// The signed counterpart of [`umem`].
#[cfg(not(feature = "128_bit_mem"))]
#[allow(non_camel_case_types)]
pub type imem = i64;

/// The signed counterpart of [`umem`].
#[cfg(feature = "128_bit_mem")]
#[allow(non_camel_case_types)]
pub type imem = i128;

/// Width of [`umem`] in bits (64 or 128).
pub const UMEM_BITS: u32 = umem::BITS;

/// An address in some address space.
///
/// Arithmetic wraps around, like the hardware it models. `Address::INVALID` (all bits set)
/// marks "no address".
#[repr(transparent)]
#[derive(Copy, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Address(umem);

impl Address {
    /// The zero address.
    pub const NULL: Address = Address(0);
    /// Marker for "no address" (all bits set).
    pub const INVALID: Address = Address(umem::MAX);

    /// Creates an address from a raw value.
    #[inline]
    pub const fn new(value: umem) -> Self {
        Address(value)
    }

    /// The raw value.
    #[inline]
    pub const fn to_umem(self) -> umem {
        self.0
    }

    /// True for the zero address.
    #[inline]
    pub const fn is_null(self) -> bool {
        self.0 == 0
    }

    /// True unless this is [`Address::INVALID`].
    #[inline]
    pub const fn is_valid(self) -> bool {
        self.0 != umem::MAX
    }

    /// Rounds down to a multiple of `align`, which must be a power of two.
    #[inline]
    pub const fn align_down(self, align: umem) -> Self {
        Address(self.0 & !(align.wrapping_sub(1)))
    }

    /// Rounds up to a multiple of `align` (a power of two), wrapping at the top of the space.
    #[inline]
    pub const fn align_up(self, align: umem) -> Self {
        Address(self.0.wrapping_add(align.wrapping_sub(1)) & !(align.wrapping_sub(1)))
    }

    /// The offset of this address inside a page of `page_size` bytes (a power of two).
    #[inline]
    pub const fn page_offset(self, page_size: umem) -> umem {
        self.0 & page_size.wrapping_sub(1)
    }

    /// Bit `bit` of the address.
    #[inline]
    pub const fn bit(self, bit: u32) -> bool {
        bit < UMEM_BITS && (self.0 >> bit) & 1 == 1
    }

    /// The bits `range.start..range.end` (low bit first), shifted down to bit 0.
    #[inline]
    pub const fn bits(self, range: Range<u32>) -> umem {
        let width = range.end - range.start;
        let shifted = if range.start >= UMEM_BITS { 0 } else { self.0 >> range.start };
        if width >= UMEM_BITS {
            shifted
        } else {
            shifted & ((1 << width) - 1)
        }
    }

    /// Adds `len`, returning `None` on overflow.
    #[inline]
    pub const fn checked_add(self, len: umem) -> Option<Self> {
        match self.0.checked_add(len) {
            Some(v) => Some(Address(v)),
            None => None,
        }
    }

    /// Distance from `other` up to `self`, `None` if `other` is above `self`.
    #[inline]
    pub const fn checked_distance(self, other: Address) -> Option<umem> {
        self.0.checked_sub(other.0)
    }
}

macro_rules! address_from {
    ($($t:ty),*) => {$(
        impl From<$t> for Address {
            #[inline]
            fn from(v: $t) -> Self {
                Address(v as umem)
            }
        }
    )*};
}
address_from!(u8, u16, u32, u64, usize);

#[cfg(feature = "128_bit_mem")]
address_from!(u128);

impl From<Address> for umem {
    #[inline]
    fn from(a: Address) -> umem {
        a.0
    }
}

impl Add<umem> for Address {
    type Output = Address;
    #[inline]
    fn add(self, rhs: umem) -> Address {
        Address(self.0.wrapping_add(rhs))
    }
}

impl Add<usize> for Address {
    type Output = Address;
    #[inline]
    fn add(self, rhs: usize) -> Address {
        Address(self.0.wrapping_add(rhs as umem))
    }
}

impl AddAssign<umem> for Address {
    #[inline]
    fn add_assign(&mut self, rhs: umem) {
        self.0 = self.0.wrapping_add(rhs);
    }
}

impl AddAssign<usize> for Address {
    #[inline]
    fn add_assign(&mut self, rhs: usize) {
        self.0 = self.0.wrapping_add(rhs as umem);
    }
}

impl Sub<umem> for Address {
    type Output = Address;
    #[inline]
    fn sub(self, rhs: umem) -> Address {
        Address(self.0.wrapping_sub(rhs))
    }
}

impl SubAssign<umem> for Address {
    #[inline]
    fn sub_assign(&mut self, rhs: umem) {
        self.0 = self.0.wrapping_sub(rhs);
    }
}

/// The distance between two addresses (wrapping).
impl Sub<Address> for Address {
    type Output = umem;
    #[inline]
    fn sub(self, rhs: Address) -> umem {
        self.0.wrapping_sub(rhs.0)
    }
}

impl BitAnd<umem> for Address {
    type Output = Address;
    #[inline]
    fn bitand(self, rhs: umem) -> Address {
        Address(self.0 & rhs)
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

impl fmt::LowerHex for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::LowerHex::fmt(&self.0, f)
    }
}

impl fmt::UpperHex for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::UpperHex::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn alignment() {
        assert_eq!(Address::new(0x1234).align_down(0x1000), Address::new(0x1000));
        assert_eq!(Address::new(0x1234).align_up(0x1000), Address::new(0x2000));
        assert_eq!(Address::new(0x2000).align_up(0x1000), Address::new(0x2000));
        assert_eq!(Address::new(0x1234).page_offset(0x1000), 0x234);
    }

    #[test]
    fn bit_extraction() {
        let a = Address::new(0xffff_8000_1234_5678);
        assert!(a.bit(63));
        assert!(!a.bit(UMEM_BITS));
        assert_eq!(a.bits(39..48), 0x100);
        assert_eq!(a.bits(0..12), 0x678);
        assert_eq!(a.bits(0..UMEM_BITS), a.to_umem());
    }

    #[test]
    fn width_matches_feature() {
        #[cfg(feature = "128_bit_mem")]
        assert_eq!(core::mem::size_of::<Address>(), 16);
        #[cfg(not(feature = "128_bit_mem"))]
        assert_eq!(core::mem::size_of::<Address>(), 8);
    }

    proptest! {
        #[test]
        fn align_down_is_aligned_and_not_above(v in any::<umem>(), shift in 0u32..40) {
            let align = (1 as umem) << shift;
            let a = Address::new(v).align_down(align);
            prop_assert_eq!(a.to_umem() % align, 0);
            prop_assert!(a.to_umem() <= v);
            prop_assert!(v - a.to_umem() < align);
        }

        #[test]
        fn align_up_is_aligned_and_close(v in 0 as umem..(umem::MAX >> 1), shift in 0u32..40) {
            let align = (1 as umem) << shift;
            let a = Address::new(v).align_up(align);
            prop_assert_eq!(a.to_umem() % align, 0);
            prop_assert!(a.to_umem() >= v);
            prop_assert!(a.to_umem() - v < align);
        }

        #[test]
        fn add_then_sub_roundtrips(v in any::<umem>(), d in any::<umem>()) {
            let a = Address::new(v);
            prop_assert_eq!((a + d) - d, a);
            prop_assert_eq!((a + d) - a, d);
        }

        #[test]
        fn bits_recompose(v in any::<umem>(), split in 1u32..63) {
            let a = Address::new(v);
            let low = a.bits(0..split);
            let high = a.bits(split..UMEM_BITS);
            prop_assert_eq!((high << split) | low, v);
        }
    }
}
