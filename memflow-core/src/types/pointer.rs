//! Typed pointers as they are stored in target memory (32 or 64 bits wide).
//!
//! A `Pointer64<T>` is exactly eight bytes, so it can be a field of a `#[repr(C)]` struct read
//! from a 64-bit target. [`crate::mem::MemoryView::read_ptr`] follows it.

use core::fmt;
use core::marker::PhantomData;

use super::{umem, Address};

/// The raw integer a target pointer is stored as.
pub trait PointerWidth: Copy + Eq + Default + fmt::Debug + bytemuck::Pod {
    /// Widens the stored value to an [`Address`].
    fn to_address(self) -> Address;
    /// Narrows an address to the stored width (truncating).
    fn from_address(a: Address) -> Self;
}

impl PointerWidth for u32 {
    fn to_address(self) -> Address {
        Address::from(self)
    }
    fn from_address(a: Address) -> Self {
        a.to_umem() as u32
    }
}

impl PointerWidth for u64 {
    fn to_address(self) -> Address {
        Address::new(self as umem)
    }
    fn from_address(a: Address) -> Self {
        a.to_umem() as u64
    }
}

/// A pointer to a `T` in target memory, stored as a `W` (`u32` or `u64`).
#[repr(transparent)]
pub struct Pointer<W: PointerWidth, T: ?Sized = ()> {
    /// The stored value.
    pub inner: W,
    phantom: PhantomData<fn() -> T>,
}

/// A 32-bit target pointer.
pub type Pointer32<T = ()> = Pointer<u32, T>;
/// A 64-bit target pointer.
pub type Pointer64<T = ()> = Pointer<u64, T>;

impl<W: PointerWidth, T: ?Sized> Pointer<W, T> {
    /// A null pointer.
    pub fn null() -> Self {
        Self::from_raw(W::default())
    }

    /// Wraps a stored value.
    pub fn from_raw(inner: W) -> Self {
        Pointer { inner, phantom: PhantomData }
    }

    /// True if null.
    pub fn is_null(&self) -> bool {
        self.inner == W::default()
    }

    /// The address it points to.
    pub fn address(&self) -> Address {
        self.inner.to_address()
    }
}

impl<W: PointerWidth, T> Pointer<W, T> {
    /// The pointer to element `index` of an array starting here.
    pub fn at(&self, index: usize) -> Address {
        self.address() + (index * core::mem::size_of::<T>()) as umem
    }
}

impl<W: PointerWidth, T: ?Sized> From<Address> for Pointer<W, T> {
    fn from(a: Address) -> Self {
        Self::from_raw(W::from_address(a))
    }
}

impl<W: PointerWidth, T: ?Sized> From<Pointer<W, T>> for Address {
    fn from(p: Pointer<W, T>) -> Address {
        p.address()
    }
}

impl<W: PointerWidth, T: ?Sized> Clone for Pointer<W, T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<W: PointerWidth, T: ?Sized> Copy for Pointer<W, T> {}
impl<W: PointerWidth, T: ?Sized> PartialEq for Pointer<W, T> {
    fn eq(&self, o: &Self) -> bool {
        self.inner == o.inner
    }
}
impl<W: PointerWidth, T: ?Sized> Eq for Pointer<W, T> {}
impl<W: PointerWidth, T: ?Sized> Default for Pointer<W, T> {
    fn default() -> Self {
        Self::null()
    }
}
impl<W: PointerWidth, T: ?Sized> fmt::Debug for Pointer<W, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.address())
    }
}

// SAFETY: `Pointer` is `repr(transparent)` over a `Pod` integer; the marker is zero-sized.
unsafe impl<W: PointerWidth, T: ?Sized + 'static> bytemuck::Zeroable for Pointer<W, T> {}
// SAFETY: as above; every bit pattern is a valid pointer value.
unsafe impl<W: PointerWidth + 'static, T: ?Sized + 'static> bytemuck::Pod for Pointer<W, T> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_and_indexing() {
        assert_eq!(core::mem::size_of::<Pointer32<u64>>(), 4);
        assert_eq!(core::mem::size_of::<Pointer64<u64>>(), 8);
        let p = Pointer64::<u32>::from(Address::new(0x1000));
        assert_eq!(p.at(3), Address::new(0x100c));
        assert!(Pointer32::<u8>::null().is_null());
    }
}
