//! Pydantic v2's validation vocabulary, so a FastAPI client sees the same 422
//! bodies: each failure is a [`FieldError`] with `type`, `loc`, `msg`,
//! `input` and, where pydantic has one, `ctx`. A task field's rule is
//! declared once, with the field ([`crate::domain::task`]); this module is
//! the one place that reads a value by its [`Kind`] as pydantic's lax mode
//! does ([`read_field`]) and words a broken rule as pydantic does, with the
//! helpers that collect every failure of a request instead of stopping at
//! the first.

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::domain::fields::{Field, Kind};

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

    pub fn string_pattern_mismatch(loc: Vec<Value>, input: &str, pattern: &str) -> Self {
        Self::new(
            "string_pattern_mismatch",
            loc,
            format!("String should match pattern '{pattern}'"),
            Value::from(input),
        )
        .with_ctx(json!({ "pattern": pattern }))
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

    pub fn int_parsing(loc: Vec<Value>, input: impl Into<Value>) -> Self {
        Self::new(
            "int_parsing",
            loc,
            "Input should be a valid integer, unable to parse string as an integer",
            input.into(),
        )
    }

    pub fn int_type(loc: Vec<Value>, input: Value) -> Self {
        Self::new("int_type", loc, "Input should be a valid integer", input)
    }

    pub fn int_from_float(loc: Vec<Value>, input: Value) -> Self {
        Self::new(
            "int_from_float",
            loc,
            "Input should be a valid integer, got a number with a fractional part",
            input,
        )
    }

    pub fn int_parsing_size(loc: Vec<Value>, input: Value) -> Self {
        Self::new(
            "int_parsing_size",
            loc,
            "Unable to parse input string as an integer, exceeded maximum size",
            input,
        )
    }

    pub fn greater_than_equal(loc: Vec<Value>, input: impl Into<Value>, ge: i64) -> Self {
        Self::new(
            "greater_than_equal",
            loc,
            format!("Input should be greater than or equal to {ge}"),
            input.into(),
        )
        .with_ctx(json!({ "ge": ge }))
    }

    pub fn less_than_equal(loc: Vec<Value>, input: impl Into<Value>, le: i64) -> Self {
        Self::new(
            "less_than_equal",
            loc,
            format!("Input should be less than or equal to {le}"),
            input.into(),
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

/// pydantic v2 lax-mode integer from a JSON value: an integer, a whole
/// float (`3.0`), a boolean (`true` is 1) or an integer string (Python's
/// `int()` syntax, [`parse_int_str`]). A fractional float is
/// `int_from_float`, a whole one beyond `i64` `int_parsing_size` (pydantic
/// says the same of `1e300`; an integer literal beyond `i64` is a float to
/// serde_json, so it gets this answer too where pydantic would check its
/// range); anything else `int_type`.
pub fn coerce_int(value: &Value, at: Vec<Value>) -> Result<i64, FieldError> {
    const MIN: f64 = i64::MIN as f64;
    const MAX: f64 = i64::MAX as f64;
    match value {
        Value::Bool(b) => Ok(i64::from(*b)),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => Ok(i),
            (None, Some(_), _) => Ok(i64::MAX),
            (None, None, Some(f)) if f.fract() != 0.0 => {
                Err(FieldError::int_from_float(at, value.clone()))
            }
            (None, None, Some(f)) if MIN < f && f < MAX => Ok(f as i64),
            _ => Err(FieldError::int_parsing_size(at, value.clone())),
        },
        Value::String(s) => {
            parse_int_str(s).ok_or_else(|| FieldError::int_parsing(at, value.clone()))
        }
        _ => Err(FieldError::int_type(at, value.clone())),
    }
}

/// A task field's value read as pydantic's lax mode reads it, by its
/// declared [`Kind`], and checked against the kind's rule: the normalised
/// JSON value (`"yes"` becomes `true`, `"3"` becomes `3`), or the one error
/// pydantic reports for the field (a type error before a rule's).
pub fn read_field(field: &Field, value: &Value) -> Result<Value, FieldError> {
    let at = loc(&["body", field.name]);
    match field.kind {
        Kind::Text { min, max } => {
            let Value::String(text) = value else {
                return Err(FieldError::string_type(at, value.clone()));
            };
            let length = text.chars().count() as u64;
            if length < min {
                Err(FieldError::string_too_short(at, value.clone(), min))
            } else if length > max {
                Err(FieldError::string_too_long(at, value.clone(), max))
            } else {
                Ok(value.clone())
            }
        }
        Kind::Bool => coerce_bool(value, at).map(Value::Bool),
        Kind::Integer { min, max } => {
            let number = coerce_int(value, at.clone())?;
            if number < min {
                Err(FieldError::greater_than_equal(at, value.clone(), min))
            } else if number > max {
                Err(FieldError::less_than_equal(at, value.clone(), max))
            } else {
                Ok(Value::from(number))
            }
        }
    }
}

/// `extra_forbidden` for every key that is not a model field, in input order.
pub fn forbid_extra(object: &Map<String, Value>, fields: &[Field]) -> Vec<FieldError> {
    object
        .iter()
        .filter(|(key, _)| !fields.iter().any(|field| field.name == key.as_str()))
        .map(|(key, value)| FieldError::extra_forbidden(loc(&["body", key]), value.clone()))
        .collect()
}
