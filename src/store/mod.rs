//! Placeholder: the sled store of last-applied state.

#[derive(Debug, thiserror::Error)]
#[error("store error")]
pub struct StoreError;
