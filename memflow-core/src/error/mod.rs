//! The error type shared by every layer, its C error codes, and partial results.
//!
//! An [`Error`] is two small enums: where it came from and what went wrong. It is `Copy`,
//! crosses the C boundary as a negative `i32` ([`Error::code`]) and comes back unchanged
//! ([`Error::from_code`]). Reads and writes that only partly succeed are not errors by
//! themselves: they return [`PartialError::PartialRead`] / [`PartialError::PartialWrite`]
//! and the caller decides ([`PartialResultExt`]).
//!
//! Why an error happened travels beside the code: [`Error::with_reason`] records it on the
//! calling thread ([`reason`]), `Display` shows it, and the C API's `mf_last_error_message`
//! and a plugin's host receive it, bounded in size.

use core::fmt;
use core::num::NonZeroI32;

pub mod reason;

macro_rules! code_enum {
    ($(#[$meta:meta])* $name:ident, $fallback:ident { $($(#[$vmeta:meta])* $variant:ident = $value:literal => $text:literal,)* }) => {
        $(#[$meta])*
        #[repr(u8)]
        #[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant = $value,)*
        }

        impl $name {
            /// A short human-readable description.
            pub const fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text,)* }
            }

            /// Decodes a raw value; unknown values map to the fallback variant.
            pub const fn from_u8(v: u8) -> Self {
                match v { $($value => Self::$variant,)* _ => Self::$fallback }
            }

            /// Every variant, in code order.
            pub const ALL: &'static [$name] = &[$(Self::$variant,)*];
        }
    };
}

code_enum! {
    /// The layer an error came from.
    ErrorOrigin, Other {
        /// Any memory view (virtual or physical).
        Memory = 1 => "memory",
        /// A physical memory backend.
        PhysicalMemory = 2 => "physical memory",
        /// Virtual memory access on top of translation.
        VirtualMemory = 3 => "virtual memory",
        /// Virtual to physical address translation.
        Translation = 4 => "address translation",
        /// A connector (where bytes come from).
        Connector = 5 => "connector",
        /// A dump or image file parser.
        FileFormat = 6 => "file format",
        /// An OS layer.
        Os = 7 => "os layer",
        /// A process of an OS layer.
        Process = 8 => "process",
        /// A plugin library or descriptor.
        Plugin = 9 => "plugin",
        /// The plugin inventory.
        Inventory = 10 => "inventory",
        /// Plugin argument parsing.
        Args = 11 => "arguments",
        /// The C API boundary.
        Ffi = 12 => "c api",
        /// Anything else.
        Other = 13 => "other",
    }
}

code_enum! {
    /// What went wrong.
    ErrorKind, Unknown {
        /// Not further specified.
        Unknown = 1 => "unknown error",
        /// Something looked up does not exist.
        NotFound = 2 => "not found",
        /// An address or offset lies outside the valid range.
        OutOfBounds = 3 => "out of bounds",
        /// No mapping exists for an address.
        Unmapped = 4 => "address not mapped",
        /// Only part of a read could be done; the rest was zero-filled.
        PartialRead = 5 => "partial read",
        /// Only part of a write could be done.
        PartialWrite = 6 => "partial write",
        /// The target cannot be written.
        ReadOnly = 7 => "read-only",
        /// An argument is invalid.
        InvalidArgument = 8 => "invalid argument",
        /// A required pointer is NULL.
        NullPointer = 9 => "null pointer",
        /// Input data is malformed.
        Malformed = 10 => "malformed data",
        /// Input data ends too early.
        Truncated = 11 => "truncated data",
        /// The format or feature is not supported.
        Unsupported = 12 => "unsupported",
        /// An operating system I/O call failed.
        Io = 13 => "i/o error",
        /// Access was denied.
        PermissionDenied = 14 => "permission denied",
        /// An ABI or version check failed.
        VersionMismatch = 15 => "version mismatch",
        /// A type layout check failed.
        LayoutMismatch = 16 => "layout mismatch",
        /// A walk exceeded its bounds (loop, self-reference, corrupt list).
        LimitExceeded = 17 => "limit exceeded",
        /// Code panicked and the panic was caught at a boundary.
        Panic = 18 => "panic caught",
        /// A resource could not be allocated.
        OutOfMemory = 19 => "out of memory",
        /// The target has gone away (process exited, guest stopped).
        Gone = 20 => "target gone",
        /// The data is not valid UTF-8 (or the encoding expected).
        Encoding = 21 => "invalid encoding",
        /// An internal invariant failed.
        Internal = 22 => "internal error",
        /// A handle passed across the C boundary is not a live object of the expected type
        /// (garbage, already freed, or of another type).
        InvalidHandle = 23 => "invalid handle",
        /// The caller stopped the operation (e.g. a progress callback asked to stop).
        Cancelled = 24 => "cancelled",
    }
}

/// An error: where it came from and what went wrong.
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct Error {
    /// The layer that reported it.
    pub origin: ErrorOrigin,
    /// What went wrong.
    pub kind: ErrorKind,
}

/// Result with the crate's [`Error`].
pub type Result<T> = core::result::Result<T, Error>;

impl Error {
    /// Builds an error.
    pub const fn new(origin: ErrorOrigin, kind: ErrorKind) -> Self {
        Error { origin, kind }
    }

    /// The negative C error code: `-(origin << 8 | kind)`. Never zero.
    pub const fn code(self) -> i32 {
        -(((self.origin as i32) << 8) | self.kind as i32)
    }

    /// Decodes a C error code. Unknown parts map to `Other` / `Unknown`; `None` for codes >= 0.
    pub const fn from_code(code: i32) -> Option<Self> {
        if code >= 0 {
            return None;
        }
        let v = code.unsigned_abs();
        Some(Error {
            origin: ErrorOrigin::from_u8(((v >> 8) & 0xff) as u8),
            kind: ErrorKind::from_u8((v & 0xff) as u8),
        })
    }
}

impl Error {
    /// `"origin: kind"` without any reason: the fixed description of the error's code.
    pub fn description(&self) -> String {
        format!("{}: {}", self.origin.as_str(), self.kind.as_str())
    }
}

impl fmt::Display for Error {
    /// `origin: kind`, followed by `: reason` when the calling thread recorded reasons for
    /// this error (see [`Error::with_reason`]).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.origin.as_str(), self.kind.as_str())?;
        match self.reason() {
            Some(reason) => write!(f, ": {reason}"),
            None => Ok(()),
        }
    }
}

impl std::error::Error for Error {}

impl cglue::result::IntError for Error {
    fn into_int_err(self) -> NonZeroI32 {
        // `code()` is never zero: origin and kind both start at 1.
        NonZeroI32::new(self.code()).unwrap_or(NonZeroI32::MIN)
    }

    fn from_int_err(err: NonZeroI32) -> Self {
        Error::from_code(err.get()).unwrap_or(Error::new(ErrorOrigin::Other, ErrorKind::Unknown))
    }
}

impl ErrorKind {
    /// The kind that best describes an I/O error.
    pub fn of_io(e: &std::io::Error) -> ErrorKind {
        use std::io::ErrorKind as K;
        match e.kind() {
            K::NotFound => ErrorKind::NotFound,
            K::PermissionDenied => ErrorKind::PermissionDenied,
            K::UnexpectedEof => ErrorKind::Truncated,
            K::InvalidInput => ErrorKind::InvalidArgument,
            K::InvalidData => ErrorKind::Malformed,
            K::OutOfMemory => ErrorKind::OutOfMemory,
            _ => ErrorKind::Io,
        }
    }
}

impl ErrorKind {
    /// The kind of a failed system call or `/proc` access on another process: a process that
    /// does not exist (any more) gives `missing`, denied access `PermissionDenied`, anything
    /// else `Io`.
    pub fn of_process_io(e: &std::io::Error, missing: ErrorKind) -> ErrorKind {
        match e.raw_os_error() {
            Some(libc::ENOENT | libc::ESRCH) => missing,
            Some(libc::EACCES | libc::EPERM) => ErrorKind::PermissionDenied,
            _ => ErrorKind::Io,
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::new(ErrorOrigin::Other, ErrorKind::of_io(&e))
    }
}

/// The error of an operation that may partly succeed.
///
/// `PartialRead(data)` means the data is there but some bytes could not be read (they are
/// zero); `PartialWrite` means some bytes were not written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartialError<T> {
    /// Nothing useful was done.
    Error(Error),
    /// Some bytes were unreadable and have been zeroed; the data is still returned.
    PartialRead(T),
    /// Some bytes were not written.
    PartialWrite,
}

/// Result of an operation that may partly succeed.
pub type PartialResult<T> = core::result::Result<T, PartialError<T>>;

impl<T> From<Error> for PartialError<T> {
    fn from(e: Error) -> Self {
        PartialError::Error(e)
    }
}

impl<T> From<PartialError<T>> for Error {
    fn from(e: PartialError<T>) -> Self {
        match e {
            PartialError::Error(e) => e,
            PartialError::PartialRead(_) => Error::new(ErrorOrigin::Memory, ErrorKind::PartialRead),
            PartialError::PartialWrite => Error::new(ErrorOrigin::Memory, ErrorKind::PartialWrite),
        }
    }
}

impl<T> fmt::Display for PartialError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&Error::from(self.as_unit()), f)
    }
}

impl<T> PartialError<T> {
    /// The same outcome carrying other data (for partial reads).
    pub fn map_data<U>(self, data: U) -> PartialError<U> {
        match self {
            PartialError::Error(e) => PartialError::Error(e),
            PartialError::PartialRead(_) => PartialError::PartialRead(data),
            PartialError::PartialWrite => PartialError::PartialWrite,
        }
    }

    fn as_unit(&self) -> PartialError<()> {
        match self {
            PartialError::Error(e) => PartialError::Error(*e),
            PartialError::PartialRead(_) => PartialError::PartialRead(()),
            PartialError::PartialWrite => PartialError::PartialWrite,
        }
    }
}

/// The caller's choice on partial results, the same for every helper.
pub trait PartialResultExt<T> {
    /// Partial results are errors.
    fn data(self) -> Result<T>;
    /// Partial reads count as success: the unreadable bytes are zero.
    fn data_part(self) -> Result<T>;
    /// True if the operation was only partly done.
    fn is_partial(&self) -> bool;
}

impl<T> PartialResultExt<T> for PartialResult<T> {
    fn data(self) -> Result<T> {
        self.map_err(Error::from)
    }

    fn data_part(self) -> Result<T> {
        match self {
            Ok(v) | Err(PartialError::PartialRead(v)) => Ok(v),
            Err(e) => Err(Error::from(e)),
        }
    }

    fn is_partial(&self) -> bool {
        matches!(self, Err(PartialError::PartialRead(_)) | Err(PartialError::PartialWrite))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_roundtrip_and_are_distinct() {
        let mut seen = std::collections::HashSet::new();
        for &origin in ErrorOrigin::ALL {
            for &kind in ErrorKind::ALL {
                let e = Error::new(origin, kind);
                assert!(e.code() < 0);
                assert_eq!(Error::from_code(e.code()), Some(e));
                assert!(seen.insert(e.code()));
            }
        }
        assert_eq!(Error::from_code(0), None);
        assert_eq!(Error::from_code(-0x7fff_ffff).map(|e| e.kind), Some(ErrorKind::Unknown));
        assert_eq!(Error::from_code(i32::MIN).map(|e| e.origin), Some(ErrorOrigin::Other));
    }

    #[test]
    fn partial_results_are_distinct() {
        let read: PartialResult<u8> = Err(PartialError::PartialRead(7));
        assert!(read.is_partial());
        assert_eq!(read.data_part(), Ok(7));
        assert_eq!(read.data().unwrap_err().kind, ErrorKind::PartialRead);
        let write: PartialResult<()> = Err(PartialError::PartialWrite);
        assert_eq!(write.data_part().unwrap_err().kind, ErrorKind::PartialWrite);
        let (read, write) = (PartialError::<u8>::PartialRead(7), PartialError::<()>::PartialWrite);
        assert_ne!(Error::from(read).code(), Error::from(write).code());
    }

    #[test]
    fn display_names_both_parts() {
        let e = Error::new(ErrorOrigin::FileFormat, ErrorKind::Truncated);
        assert_eq!(e.to_string(), "file format: truncated data");
    }
}
