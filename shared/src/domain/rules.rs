//! The field rules of a task, declared once. Validation
//! ([`crate::http::validation`]) reports a broken rule in pydantic's words
//! and the OpenAPI document ([`crate::openapi`]) publishes the same
//! bounds, both from these constants.

/// A length rule on a text field, in characters (Unicode code points, as
/// Python's `len`), both bounds inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Length {
    pub field: &'static str,
    pub min: u64,
    pub max: u64,
}

/// How a value breaks a [`Length`] rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LengthViolation {
    TooShort { min: u64 },
    TooLong { max: u64 },
}

impl Length {
    pub fn check(&self, value: &str) -> Result<(), LengthViolation> {
        let length = value.chars().count() as u64;
        if length < self.min {
            Err(LengthViolation::TooShort { min: self.min })
        } else if length > self.max {
            Err(LengthViolation::TooLong { max: self.max })
        } else {
            Ok(())
        }
    }
}

/// `title`: 1 to 200 characters.
pub const TITLE: Length = Length {
    field: "title",
    min: 1,
    max: 200,
};

/// `description`: up to 2000 characters.
pub const DESCRIPTION: Length = Length {
    field: "description",
    min: 0,
    max: 2000,
};

/// Every text rule, in the models' field order.
pub const LENGTHS: [Length; 2] = [TITLE, DESCRIPTION];

/// The task fields a body may carry, in pydantic's field order.
pub const TASK_FIELDS: [&str; 3] = ["title", "description", "done"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_count_characters_not_bytes() {
        assert_eq!(TITLE.check(&"é".repeat(200)), Ok(()));
        assert_eq!(
            TITLE.check(&"é".repeat(201)),
            Err(LengthViolation::TooLong { max: 200 })
        );
        assert_eq!(TITLE.check(""), Err(LengthViolation::TooShort { min: 1 }));
        assert_eq!(DESCRIPTION.check(""), Ok(()));
    }
}
