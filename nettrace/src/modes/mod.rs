//! One module per tracing mode: what it attaches and how it prints.

pub mod drop;
pub mod lifecycle;
