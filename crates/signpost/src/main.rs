//! signpost binary
fn main() {}
