//! Placeholder: replaced by the API client work (issue 3).

#[derive(Debug, thiserror::Error)]
#[error("api error")]
pub struct ApiError;
