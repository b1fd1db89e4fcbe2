//! The store behind one interface.
