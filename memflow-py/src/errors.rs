//! The exception hierarchy: `MemflowError`, and one subclass per [`ErrorKind`] whose message is
//! the error's reason (the error's description where it has none).

use memflow_cli::Failure;
use memflow_core::error::{Error, ErrorKind};
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::PyType;
use pyo3::{create_exception, PyTypeInfo};

create_exception!(memflow, MemflowError, PyException, "Base class of every error memflow raises.");

/// Declares one exception class per error kind and the table that maps kinds to them.
macro_rules! kind_exceptions {
    ($($kind:ident => $name:ident: $doc:literal,)*) => {
        $(create_exception!(memflow, $name, MemflowError, $doc);)*

        /// The exception class of `kind`.
        fn class_of(py: Python<'_>, kind: ErrorKind) -> Bound<'_, PyType> {
            match kind {
                $(ErrorKind::$kind => $name::type_object(py),)*
            }
        }

        /// Adds `MemflowError` and every kind's exception class to `module`.
        pub fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
            let py = module.py();
            module.add("MemflowError", MemflowError::type_object(py))?;
            $(module.add(stringify!($name), $name::type_object(py))?;)*
            Ok(())
        }
    };
}

kind_exceptions! {
    Unknown => UnknownError: "An error of no further specified kind.",
    NotFound => NotFoundError: "Something looked up (process, module, plugin, symbol) does not exist.",
    OutOfBounds => OutOfBoundsError: "An address or offset lies outside the valid range.",
    Unmapped => UnmappedError: "No mapping exists for an address.",
    PartialRead => PartialReadError: "Only part of a read could be done (pass `pad=True` to accept zeros).",
    PartialWrite => PartialWriteError: "Only part of a write could be done.",
    ReadOnly => ReadOnlyError: "The target cannot be written.",
    InvalidArgument => InvalidArgumentError: "An argument (of a chain, a plugin, a call) is invalid.",
    NullPointer => NullPointerError: "A required pointer is NULL.",
    Malformed => MalformedError: "Input data (a dump, guest structures) is malformed.",
    Truncated => TruncatedError: "Input data ends too early.",
    Unsupported => UnsupportedError: "The format or feature is not supported by this layer.",
    Io => IoError: "An operating system I/O call failed.",
    PermissionDenied => PermissionDeniedError: "Access was denied.",
    VersionMismatch => VersionMismatchError: "An ABI or version check failed.",
    LayoutMismatch => LayoutMismatchError: "A type layout check failed.",
    LimitExceeded => LimitExceededError: "A walk exceeded its bounds (loop, self-reference, corrupt list).",
    Panic => PanicError: "Code panicked and the panic was caught at a boundary.",
    OutOfMemory => OutOfMemoryError: "A resource could not be allocated.",
    Gone => GoneError: "The target has gone away (process exited, guest stopped, object closed).",
    Encoding => EncodingError: "The data is not valid UTF-8 (or the encoding expected).",
    Internal => InternalError: "An internal invariant failed.",
    InvalidHandle => InvalidHandleError: "A handle is not a live object of the expected type.",
    Cancelled => CancelledError: "The operation was stopped on request (e.g. by its progress callback).",
}

/// An error of the library with its reason, taken on the thread that made it (reasons are
/// recorded per thread).
#[derive(Debug)]
pub struct Raised {
    kind: Option<ErrorKind>,
    origin: &'static str,
    message: String,
}

impl Raised {
    /// An error of `kind` raised by the bindings themselves, with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Raised { kind: Some(kind), origin: "python", message: message.into() }
    }

    /// `error`, said about `what` (e.g. "process 42").
    pub fn about(what: impl std::fmt::Display, error: Error) -> Self {
        let raised = Raised::from(error);
        Raised { message: format!("{what}: {}", raised.message), ..raised }
    }
}

impl From<Error> for Raised {
    fn from(error: Error) -> Self {
        let message = error.reason().unwrap_or_else(|| error.kind.as_str().to_string());
        Raised { kind: Some(error.kind), origin: error.origin.as_str(), message }
    }
}

impl From<Failure> for Raised {
    /// A failure of the scanner (which the command-line tool shares) keeps only its message.
    fn from(failure: Failure) -> Self {
        Raised { kind: None, origin: "scan", message: failure.message }
    }
}

impl From<Raised> for PyErr {
    fn from(raised: Raised) -> PyErr {
        Python::with_gil(|py| {
            let class = match raised.kind {
                Some(kind) => class_of(py, kind),
                None => MemflowError::type_object(py),
            };
            let err = PyErr::from_type(class, raised.message);
            let value = err.value(py);
            // The attributes are informative extras; the message already says what failed.
            let _ = value.setattr("origin", raised.origin);
            let _ = value.setattr("kind", raised.kind.map(ErrorKind::as_str));
            err
        })
    }
}

/// Result of the bindings' Rust side.
pub type Result<T> = std::result::Result<T, Raised>;
