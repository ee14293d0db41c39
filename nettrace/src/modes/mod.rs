//! One module per tracing mode: what it attaches and how it prints.

pub mod conn;
pub mod drop;
pub mod lifecycle;
pub mod tcp;
