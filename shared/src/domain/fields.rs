//! How a task's fields are declared: once, in the [`task_fields!`] block of
//! [`super::task`], each with its name, Rust type, [`Kind`] (its rule),
//! default and example. The macro writes the models from it ([`super::task::Task`],
//! [`super::task::TaskCreate`], [`super::task::TaskPatch`]) and the table
//! [`super::task::FIELDS`]; every other place that deals with a task's fields
//! is derived from those, never spelled again by hand:
//!
//! | what | where | how |
//! |---|---|---|
//! | parsing a body, pydantic's 422s (lax coercion) | `http::body`, `http::validation::read_field` | per [`Kind`], walking `FIELDS` |
//! | the OpenAPI schemas, bounds, defaults, examples | `http::schemas` | per [`Kind`], walking `FIELDS` |
//! | the stored item, SET clauses, the in-memory store | `adapters::dynamo`, `adapters::memory` | serde of the models; `TaskPatch::apply` |
//! | stream images, the history's field changes | `adapters::stream_record`, `domain::change` | serde of `Task`, walking `FIELDS` |
//! | the idempotency fingerprint | `ports::Idempotency` | the request's fields in `FIELDS` order |
//! | CSV columns and rows | `handlers::export_tasks` | walking `FIELDS` |
//! | the empty PATCH | `TaskPatch::is_empty` | generated |
//!
//! A field added to the block is therefore parsed, checked, documented,
//! stored, patched, audited, fingerprinted and exported, and
//! `shared/tests/it/fields.rs` walks `FIELDS` to prove each of those
//! places agrees (naming the field that does not).

use serde_json::Value;

/// What a field holds, with its rule: how a body's value is read (pydantic
/// v2 lax mode), checked and published. A new kind of value (a float, an
/// enum) is a new variant here, with its arm in `http::validation::read_field`
/// and in the schema builder of `http::schemas`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A string of `min..=max` characters (Unicode code points, as Python's
    /// `len`): pydantic's `str` with `min_length`/`max_length`. No coercion:
    /// a number is not a string.
    Text { min: u64, max: u64 },
    /// A boolean with pydantic's lax forms (`0`/`1`, `"yes"`, `"off"`, ...).
    Bool,
    /// An integer in `min..=max` with pydantic's lax forms (`"3"`, `3.0`,
    /// `true`): pydantic's `int` with `ge`/`le`.
    Integer { min: i64, max: i64 },
}

/// One declared field, as [`task_fields!`] writes it into `FIELDS`.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    /// The wire name: the JSON key, the stored attribute, the CSV column.
    pub name: &'static str,
    pub kind: Kind,
    /// The doc comment of the declaration: the schema's description.
    pub doc: &'static str,
    /// The value a create or replace gets when the field is not sent, and
    /// what an item stored before the field existed reads as. `None`: the
    /// field is required (`missing` when absent).
    pub default: Option<fn() -> Value>,
    /// A valid value, shown in the OpenAPI schema.
    pub example: fn() -> Value,
}

impl Field {
    pub fn required(&self) -> bool {
        self.default.is_none()
    }

    pub fn default_value(&self) -> Option<Value> {
        self.default.map(|default| default())
    }

    pub fn example_value(&self) -> Value {
        (self.example)()
    }
}

/// Declares the task's fields, once: each as
///
/// ```text
/// /// Its description (the schema's).
/// name: RustType { kind: Kind::..., [default: expr,] example: expr },
/// ```
///
/// and writes `Task` (with `id`, `created_at`, `updated_at` around the
/// declared fields), `TaskCreate`, `TaskPatch` and `FIELDS` from it. A
/// field without `default` is required on create and replace.
#[macro_export]
macro_rules! task_fields {
    (
        $(
            $(#[doc = $doc:literal])*
            $name:ident : $ty:ty {
                kind: $kind:expr,
                $(default: $default:expr,)?
                example: $example:expr $(,)?
            }
        ),+ $(,)?
    ) => {
        /// A task as every response shows it: its id, the declared fields
        /// in declaration order, and its timestamps.
        #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(try_from = "StoredTask")]
        pub struct Task {
            /// UUIDv7: time-ordered, so "oldest first" is key order.
            pub id: uuid::Uuid,
            $( $(#[doc = $doc])* pub $name: $ty, )+
            #[serde(serialize_with = "rfc3339")]
            pub created_at: chrono::DateTime<chrono::Utc>,
            #[serde(serialize_with = "rfc3339")]
            pub updated_at: chrono::DateTime<chrono::Utc>,
        }

        /// A task as read back (a stored item, a stream image, a change's
        /// copy): a declared field that is absent reads as its default, so
        /// items written before the field existed still read; a required
        /// one that is absent is an error.
        #[derive(serde::Deserialize)]
        struct StoredTask {
            id: uuid::Uuid,
            $( $name: Option<$ty>, )+
            created_at: chrono::DateTime<chrono::Utc>,
            updated_at: chrono::DateTime<chrono::Utc>,
        }

        impl TryFrom<StoredTask> for Task {
            type Error = String;

            fn try_from(stored: StoredTask) -> Result<Self, Self::Error> {
                Ok(Task {
                    id: stored.id,
                    $(
                        $name: match stored.$name {
                            Some(value) => value,
                            None => $crate::task_fields!(@default $name $($default)?)?,
                        },
                    )+
                    created_at: stored.created_at,
                    updated_at: stored.updated_at,
                })
            }
        }

        /// POST and PUT bodies: a whole task with create's defaults.
        #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
        pub struct TaskCreate {
            $( $(#[doc = $doc])* pub $name: $ty, )+
        }

        /// PATCH bodies: only the fields sent change; `{}` is a valid
        /// no-op. An explicit `null` is a 422, never "unchanged".
        #[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
        pub struct TaskPatch {
            $(
                $(#[doc = $doc])*
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub $name: Option<$ty>,
            )+
        }

        /// The declared fields, in declaration order (pydantic's order of
        /// fields and errors, the CSV's column order).
        pub const FIELDS: &[$crate::domain::fields::Field] = &[
            $(
                $crate::domain::fields::Field {
                    name: stringify!($name),
                    kind: $kind,
                    doc: concat!($($doc, "\n",)*),
                    default: $crate::task_fields!(@default_json $($default)?),
                    example: (|| serde_json::json!($example)) as fn() -> serde_json::Value,
                },
            )+
        ];

        /// Create's defaults, with each required field at its type's
        /// default (`""`): a starting point for code that builds a
        /// `TaskCreate` (`TaskCreate { title: ..., ..Default::default() }`),
        /// so it compiles unchanged when a field is added. What a request
        /// must send is checked when its body is read, not here.
        impl Default for TaskCreate {
            fn default() -> Self {
                TaskCreate {
                    $(
                        $name: $crate::task_fields!(@default $name $($default)?)
                            .unwrap_or_default(),
                    )+
                }
            }
        }

        impl Task {
            /// A task with these fields, id and times.
            pub fn with(
                id: uuid::Uuid,
                input: TaskCreate,
                created_at: chrono::DateTime<chrono::Utc>,
                updated_at: chrono::DateTime<chrono::Utc>,
            ) -> Self {
                Task {
                    id,
                    $( $name: input.$name, )+
                    created_at,
                    updated_at,
                }
            }

            /// The declared fields as a request would send them.
            pub fn input(&self) -> TaskCreate {
                TaskCreate { $( $name: self.$name.clone(), )+ }
            }
        }

        impl TaskPatch {
            /// Nothing to change.
            pub fn is_empty(&self) -> bool {
                true $( && self.$name.is_none() )+
            }

            /// Sets the fields present on `task` (times and version are
            /// the store's).
            pub fn apply(self, task: &mut Task) {
                $(
                    if let Some(value) = self.$name {
                        task.$name = value;
                    }
                )+
            }
        }
    };
    (@default $name:ident $default:expr) => { Ok::<_, String>($default) };
    (@default $name:ident) => {
        Err::<_, String>(format!("missing field `{}`", stringify!($name)))
    };
    (@default_json $default:expr) => {
        Some((|| serde_json::json!($default)) as fn() -> serde_json::Value)
    };
    (@default_json) => { None };
}

/// Values for tests that walk every declared field (`shared/tests/it/fields.rs`,
/// the store contract): derived from the kind, so a new field is tested
/// without writing its values again.
#[cfg(feature = "test-support")]
impl Field {
    /// A valid value other than the example.
    pub fn other_value(&self) -> Value {
        let example = self.example_value();
        match self.kind {
            Kind::Text { min, max } => {
                let length = min.max(1);
                let mut text = "é".repeat(length as usize);
                if example == text.as_str() {
                    text = if length < max {
                        "é".repeat(length as usize + 1)
                    } else {
                        "ü".repeat(length as usize)
                    };
                }
                Value::from(text)
            }
            Kind::Bool => Value::from(example != Value::Bool(true)),
            Kind::Integer { min, max } => {
                if example == min {
                    Value::from(max)
                } else {
                    Value::from(min)
                }
            }
        }
    }

    /// A value the field's rule refuses, and pydantic's error type for it.
    pub fn invalid_value(&self) -> (Value, &'static str) {
        match self.kind {
            Kind::Text { max, .. } => {
                (Value::from("x".repeat(max as usize + 1)), "string_too_long")
            }
            Kind::Bool => (Value::from("maybe"), "bool_parsing"),
            Kind::Integer { max, .. } => (Value::from(max.saturating_add(1)), "less_than_equal"),
        }
    }
}
