//! Library part of the project's tasks, shared with the integration tests (which regenerate
//! the headers and compare them with the checked-in ones, and build the SDK archive).

pub mod dist;
pub mod headers;
