//! Pydantic v2's validation vocabulary, so a FastAPI client sees the same 422
//! bodies: each failure is a [`FieldError`] with `type`, `loc`, `msg`,
//! `input` and, where pydantic has one, `ctx`. Field *rules* (lengths) are
//! declared once in [`crate::domain::rules`]; this module is the one place
//! that words a broken rule as pydantic does, with the lax-mode coercions
//! and the helpers that collect every failure of a request instead of
//! stopping at the first.

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::domain::rules::{LENGTHS, LengthViolation};

/// One validation failure, serialised exactly as FastAPI does.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldError {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub loc: Vec<Value>,
    pub msg: String,
    pub input: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ctx: Option<Value>,
}

/// A validated value, or every failure found while validating it.
pub type Validated<T> = Result<T, Vec<FieldError>>;

/// Where a value came from: `["body", "title"]`, `["query", "limit"]`, ...
pub fn loc(parts: &[&str]) -> Vec<Value> {
    parts.iter().map(|p| Value::from(*p)).collect()
}

impl FieldError {
    fn new(kind: &'static str, loc: Vec<Value>, msg: impl Into<String>, input: Value) -> Self {
        FieldError {
            kind,
            loc,
            msg: msg.into(),
            input,
            ctx: None,
        }
    }

    fn with_ctx(mut self, ctx: Value) -> Self {
        self.ctx = Some(ctx);
        self
    }

    pub fn missing(loc: Vec<Value>, input: Value) -> Self {
        Self::new("missing", loc, "Field required", input)
    }

    pub fn string_type(loc: Vec<Value>, input: Value) -> Self {
        Self::new("string_type", loc, "Input should be a valid string", input)
    }

    pub fn string_too_short(loc: Vec<Value>, input: Value, min: u64) -> Self {
        let unit = if min == 1 { "character" } else { "characters" };
        Self::new(
            "string_too_short",
            loc,
            format!("String should have at least {min} {unit}"),
            input,
        )
        .with_ctx(json!({ "min_length": min }))
    }

    pub fn string_too_long(loc: Vec<Value>, input: Value, max: u64) -> Self {
        let unit = if max == 1 { "character" } else { "characters" };
        Self::new(
            "string_too_long",
            loc,
            format!("String should have at most {max} {unit}"),
            input,
        )
        .with_ctx(json!({ "max_length": max }))
    }

    pub fn bool_parsing(loc: Vec<Value>, input: Value) -> Self {
        Self::new(
            "bool_parsing",
            loc,
            "Input should be a valid boolean, unable to interpret input",
            input,
        )
    }

    pub fn bool_type(loc: Vec<Value>, input: Value) -> Self {
        Self::new("bool_type", loc, "Input should be a valid boolean", input)
    }

    pub fn extra_forbidden(loc: Vec<Value>, input: Value) -> Self {
        Self::new(
            "extra_forbidden",
            loc,
            "Extra inputs are not permitted",
            input,
        )
    }

    pub fn model_attributes_type(input: Value) -> Self {
        Self::new(
            "model_attributes_type",
            loc(&["body"]),
            "Input should be a valid dictionary or object to extract fields from",
            input,
        )
    }

    /// `offset` is the character position of the error, as Python's `json`
    /// module reports it (FastAPI puts it in `loc`).
    pub fn json_invalid(offset: usize, error: &str) -> Self {
        Self::new(
            "json_invalid",
            vec![Value::from("body"), Value::from(offset)],
            "JSON decode error",
            json!({}),
        )
        .with_ctx(json!({ "error": error }))
    }

    /// pydantic-core parses UUIDs with the same `uuid` crate (its
    /// `parse_str`), so the error text (`invalid length: found 3`) is the
    /// one FastAPI shows.
    pub fn uuid_parsing(loc: Vec<Value>, input: &str, error: &uuid::Error) -> Self {
        Self::new(
            "uuid_parsing",
            loc,
            format!("Input should be a valid UUID, {error}"),
            Value::from(input),
        )
        .with_ctx(json!({ "error": error.to_string() }))
    }

    pub fn int_parsing(loc: Vec<Value>, input: &str) -> Self {
        Self::new(
            "int_parsing",
            loc,
            "Input should be a valid integer, unable to parse string as an integer",
            Value::from(input),
        )
    }

    pub fn greater_than_equal(loc: Vec<Value>, input: &str, ge: i64) -> Self {
        Self::new(
            "greater_than_equal",
            loc,
            format!("Input should be greater than or equal to {ge}"),
            Value::from(input),
        )
        .with_ctx(json!({ "ge": ge }))
    }

    pub fn less_than_equal(loc: Vec<Value>, input: &str, le: i64) -> Self {
        Self::new(
            "less_than_equal",
            loc,
            format!("Input should be less than or equal to {le}"),
            Value::from(input),
        )
        .with_ctx(json!({ "le": le }))
    }

    /// A value outside a `Literal[...]`: `expected` lists the allowed
    /// values, quoted, as pydantic words it (`'ndjson' or 'csv'`).
    pub fn literal_error(loc: Vec<Value>, input: &str, allowed: &[&str]) -> Self {
        let quoted: Vec<String> = allowed.iter().map(|v| format!("'{v}'")).collect();
        let expected = match quoted.split_last() {
            Some((last, [])) => last.clone(),
            Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
            None => String::new(),
        };
        Self::new(
            "literal_error",
            loc,
            format!("Input should be {expected}"),
            Value::from(input),
        )
        .with_ctx(json!({ "expected": expected }))
    }

    /// A validator's `ValueError`. pydantic puts the exception object itself
    /// in `ctx.error`, and FastAPI's `jsonable_encoder` renders an exception
    /// as `{}`: the reason is only in `msg`.
    pub fn value_error(loc: Vec<Value>, input: &str, error: &str) -> Self {
        Self::new(
            "value_error",
            loc,
            format!("Value error, {error}"),
            Value::from(input),
        )
        .with_ctx(json!({ "error": {} }))
    }
}

/// Both values, or the failures of both (in that order).
pub fn zip<A, B>(a: Validated<A>, b: Validated<B>) -> Validated<(A, B)> {
    match (a, b) {
        (Ok(a), Ok(b)) => Ok((a, b)),
        (a, b) => {
            let mut errors = a.err().unwrap_or_default();
            errors.extend(b.err().unwrap_or_default());
            Err(errors)
        }
    }
}

/// pydantic v2 lax-mode boolean: `true/false`, `0/1` and the strings
/// `true false yes no on off 1 0 t f y n` in any case.
///
/// A number is first read as an `i64`, as pydantic-core does: a float only
/// when it is whole and within `i64` (`1.0` is `1`). An integer other than
/// 0 or 1 is `bool_parsing`; a number that is no `i64` at all (`0.5`,
/// `1e300`, `2**64 - 1`) is `bool_type`.
pub fn coerce_bool(value: &Value, at: Vec<Value>) -> Result<bool, FieldError> {
    match value {
        Value::Bool(b) => Ok(*b),
        Value::Number(n) => match number_as_i64(n) {
            Some(0) => Ok(false),
            Some(1) => Ok(true),
            Some(_) => Err(FieldError::bool_parsing(at, value.clone())),
            None => Err(FieldError::bool_type(at, value.clone())),
        },
        Value::String(s) => {
            parse_bool_str(s).ok_or_else(|| FieldError::bool_parsing(at, value.clone()))
        }
        _ => Err(FieldError::bool_type(at, value.clone())),
    }
}

/// pydantic-core's `float_as_int` bounds: whole floats strictly inside the
/// `i64` range.
fn number_as_i64(n: &serde_json::Number) -> Option<i64> {
    const MIN: f64 = i64::MIN as f64;
    const MAX: f64 = i64::MAX as f64;
    n.as_i64().or_else(|| {
        n.as_f64()
            .filter(|f| f.fract() == 0.0 && MIN < *f && *f < MAX)
            .map(|f| f as i64)
    })
}

/// The string half of [`coerce_bool`]; also used for query parameters.
/// Not trimmed: pydantic rejects `" true"`.
pub fn parse_bool_str(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" | "t" | "y" => Some(true),
        "false" | "no" | "off" | "0" | "f" | "n" => Some(false),
        _ => None,
    }
}

/// pydantic v2 lax-mode integer from a string (query parameters): Python
/// `int()` syntax, that is surrounding whitespace, an optional sign and
/// ASCII digits with single `_` between them, plus pydantic's optional
/// all-zero fraction (`"5.0"`, not `"5."`). pydantic parses any number of
/// digits; beyond `i64` this saturates, so such a value still fails a range
/// check (`less_than_equal`) rather than `int_parsing`.
pub fn parse_int_str(s: &str) -> Option<i64> {
    let s = s.trim();
    let (negative, unsigned) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let digits = match unsigned.split_once('.') {
        None => unsigned,
        Some((int, zeros)) if !zeros.is_empty() && zeros.bytes().all(|b| b == b'0') => int,
        Some(_) => return None,
    };
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
    {
        return None;
    }
    let mut value: i64 = 0;
    for byte in digits.bytes() {
        match byte {
            b'_' => {}
            b'0'..=b'9' => {
                value = value
                    .saturating_mul(10)
                    .saturating_add(i64::from(byte - b'0'));
            }
            _ => return None,
        }
    }
    Some(if negative { -value } else { value })
}

/// A string field: `Ok(None)` when absent, an error when not a string
/// (`null` included: an explicit null is never "unchanged").
pub fn optional_string(
    object: &Map<String, Value>,
    field: &str,
) -> Result<Option<String>, FieldError> {
    match object.get(field) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(FieldError::string_type(
            loc(&["body", field]),
            other.clone(),
        )),
    }
}

/// A boolean field with lax coercion: `Ok(None)` when absent.
pub fn optional_bool(object: &Map<String, Value>, field: &str) -> Result<Option<bool>, FieldError> {
    object
        .get(field)
        .map(|v| coerce_bool(v, loc(&["body", field])))
        .transpose()
}

/// `extra_forbidden` for every key that is not a model field, in input order.
pub fn forbid_extra(object: &Map<String, Value>, fields: &[&str]) -> Vec<FieldError> {
    object
        .iter()
        .filter(|(key, _)| !fields.contains(&key.as_str()))
        .map(|(key, value)| FieldError::extra_forbidden(loc(&["body", key]), value.clone()))
        .collect()
}

/// Every broken length rule of a body ([`LENGTHS`]) as pydantic's
/// `string_too_short` / `string_too_long`, in the model's field order.
/// Fields absent, or that already failed their type check, are skipped:
/// pydantic reports one error per field.
pub fn length_errors(object: &Map<String, Value>, already_failed: &[&str]) -> Vec<FieldError> {
    LENGTHS
        .iter()
        .filter(|rule| !already_failed.contains(&rule.field))
        .filter_map(|rule| {
            let input = object.get(rule.field)?;
            let violation = rule.check(input.as_str()?).err()?;
            let at = loc(&["body", rule.field]);
            Some(match violation {
                LengthViolation::TooShort { min } => {
                    FieldError::string_too_short(at, input.clone(), min)
                }
                LengthViolation::TooLong { max } => {
                    FieldError::string_too_long(at, input.clone(), max)
                }
            })
        })
        .collect()
}
