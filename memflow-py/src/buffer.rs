//! Python objects' memory through the buffer protocol: `bytes`, `bytearray`, `memoryview`,
//! `array.array`, numpy arrays and `ctypes` arrays, without depending on any of them.

use std::ffi::c_int;
use std::mem::MaybeUninit;

use memflow_core::error::ErrorKind;
use pyo3::ffi;
use pyo3::prelude::*;

use crate::errors::Raised;

/// The bytes of a Python object that exports a C-contiguous buffer, held (and so kept from
/// being resized or freed) until dropped.
pub struct Buffer {
    view: Box<ffi::Py_buffer>,
}

impl Buffer {
    /// The buffer of `object`; `writable` asks for one that may be written.
    pub fn get(object: &Bound<'_, PyAny>, writable: bool) -> PyResult<Buffer> {
        let flags: c_int = ffi::PyBUF_C_CONTIGUOUS | if writable { ffi::PyBUF_WRITABLE } else { 0 };
        let mut view: Box<MaybeUninit<ffi::Py_buffer>> = Box::new(MaybeUninit::uninit());
        // SAFETY: `object` is a live object (we hold the GIL through `Bound`) and `view` is
        // room for one `Py_buffer`, which Python fills when it returns 0.
        let status = unsafe { ffi::PyObject_GetBuffer(object.as_ptr(), view.as_mut_ptr(), flags) };
        if status != 0 {
            return Err(PyErr::fetch(object.py()));
        }
        // SAFETY: filled by the successful `PyObject_GetBuffer` above.
        let view = unsafe { Box::from_raw(Box::into_raw(view).cast::<ffi::Py_buffer>()) };
        let buffer = Buffer { view };
        if buffer.view.len < 0 || (buffer.view.buf.is_null() && buffer.view.len > 0) {
            return Err(Raised::new(ErrorKind::InvalidArgument, "the object exports an invalid buffer").into());
        }
        Ok(buffer)
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.view.len as usize
    }

    /// Its bytes, to write into (a buffer asked for as writable).
    pub fn bytes_mut(&mut self) -> BytesMut {
        BytesMut { ptr: self.view.buf.cast(), len: self.len() }
    }

    /// Its bytes.
    pub fn bytes(&self) -> &[u8] {
        match self.len() {
            0 => &[],
            // SAFETY: the exporter keeps `len` bytes at `buf` for as long as the view is held,
            // which `self` does.
            len => unsafe { std::slice::from_raw_parts(self.view.buf.cast::<u8>(), len) },
        }
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        // Releasing calls back into the exporter, which needs the GIL.
        Python::with_gil(|_| {
            // SAFETY: `view` was filled by `PyObject_GetBuffer` and is released once.
            unsafe { ffi::PyBuffer_Release(&mut *self.view) }
        });
    }
}

/// The bytes of a writable [`Buffer`], movable to a thread that runs without the GIL.
pub struct BytesMut {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the memory belongs to the exporting object, which the `Buffer` this came from keeps
// alive and unresized while the bytes are in use; as with any buffer handed to native code,
// Python code writing the same object concurrently races (numpy's own rule).
unsafe impl Send for BytesMut {}

impl BytesMut {
    /// The bytes.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        match self.len {
            0 => &mut [],
            // SAFETY: see `Buffer::bytes`; a writable buffer was asked for.
            len => unsafe { std::slice::from_raw_parts_mut(self.ptr, len) },
        }
    }
}
