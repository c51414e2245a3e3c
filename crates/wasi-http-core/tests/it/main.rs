//! Properties of the version-independent core, checked with proptest: field
//! limits under any sequence of guest operations, and bodies that are never
//! longer or shorter than they declare without an error.

mod props;
