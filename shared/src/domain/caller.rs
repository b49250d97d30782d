//! The caller: whoever a request is authenticated as (how is the HTTP
//! edge's business, [`crate::http::identity`]). Every stored item is scoped
//! by it.

/// Longest accepted caller id (a Cognito `sub` is 36 characters); keeps
/// storage keys far below DynamoDB's limits.
pub const MAX_CALLER_LEN: usize = 256;

/// An authenticated caller; every task key is scoped by it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Caller(String);

impl Caller {
    /// `None` for an empty (or blank) id or one over 256 bytes.
    pub fn new(id: impl Into<String>) -> Option<Self> {
        let id = id.into();
        let valid = !id.trim().is_empty() && id.len() <= MAX_CALLER_LEN;
        valid.then_some(Caller(id))
    }

    pub fn id(&self) -> &str {
        &self.0
    }
}
