//! Request bodies decoded as dockerd's Go decoder (`encoding/json`) decodes
//! them: an object key names a struct field exactly or, where no field has
//! that exact name, case-insensitively — `{"mode":{"replicated":{"replicas":3}}}`
//! is `Mode.Replicated.Replicas` — and keys naming no field are ignored.
//! Docker SDKs rely on it (they send whatever case their authors wrote).
//!
//! One mechanism for every body type: a [`serde::Deserializer`] adapter
//! around serde_json's streaming one that, where a struct is asked for,
//! gives each key as the field it matches. The bytes stream straight into
//! the target type (a secret's payload into its zeroizing buffer), never
//! into an intermediate tree. The adapter also follows the path of fields,
//! for Go's error text when a value has the wrong type.

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Deserializer, EnumAccess, IntoDeserializer, MapAccess, SeqAccess,
    VariantAccess, Visitor,
};

/// Why a body was refused, in words that never quote it.
#[derive(Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Not JSON (or cut short): where.
    Syntax(String),
    /// A value of the wrong type: Go's `json: cannot unmarshal …` text.
    Type(String),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Syntax(s) | DecodeError::Type(s) => f.write_str(s),
        }
    }
}

/// The body as `T`, keys matched as Go matches them.
pub fn from_slice<T: DeserializeOwned>(body: &[u8]) -> Result<T, DecodeError> {
    let track = Track::default();
    let mut inner = serde_json::Deserializer::from_slice(body);
    let result = T::deserialize(Go {
        inner: &mut inner,
        track: track.clone(),
    })
    .and_then(|v| inner.end().map(|()| v));
    result.map_err(|e| describe(&e, &track))
}

/// The path of fields being decoded, and the first failure's.
#[derive(Clone, Default)]
struct Track(Rc<RefCell<TrackState>>);

#[derive(Default)]
struct TrackState {
    /// The root struct's name (Go names the type).
    root: Option<&'static str>,
    /// The fields being decoded (left as they were where decoding failed).
    path: Vec<String>,
}

impl Track {
    fn root(&self, name: &'static str) {
        let mut s = self.0.borrow_mut();
        if s.root.is_none() {
            s.root = Some(name);
        }
    }

    fn push(&self, field: String) {
        self.0.borrow_mut().path.push(field);
    }

    fn pop(&self) {
        self.0.borrow_mut().path.pop();
    }
}

fn describe(e: &serde_json::Error, track: &Track) -> DecodeError {
    use serde_json::error::Category;
    let at = format!("line {} column {}", e.line(), e.column());
    match e.classify() {
        Category::Syntax => DecodeError::Syntax(format!("invalid JSON: syntax error at {at}")),
        Category::Eof => DecodeError::Syntax("invalid JSON: unexpected EOF".into()),
        Category::Io => DecodeError::Syntax(format!("invalid JSON: I/O error at {at}")),
        Category::Data => {
            let s = track.0.borrow();
            let root = s.root.unwrap_or("");
            let path = s.path.join(".");
            // serde's "invalid type: FOUND …, expected X": FOUND's first word
            // and X come from the types, never from the input (what lies
            // between may quote the input: it is not read).
            let text = e.to_string();
            let found = text
                .strip_prefix("invalid type: ")
                .and_then(|rest| rest.split([' ', ',']).next())
                .and_then(json_type);
            let expected = text
                .rsplit_once(", expected ")
                .map(|(_, x)| x.rsplit_once(" at line ").map_or(x, |(x, _)| x))
                .and_then(go_type);
            match found {
                Some(found) if !path.is_empty() => DecodeError::Type(format!(
                    "json: cannot unmarshal {found} into Go struct field {root}.{path}{}",
                    expected.map(|t| format!(" of type {t}")).unwrap_or_default()
                )),
                Some(found) => DecodeError::Type(format!(
                    "json: cannot unmarshal {found} into Go value of type {}",
                    expected.unwrap_or(root)
                )),
                None if !path.is_empty() => DecodeError::Type(format!("invalid value for {root}.{path} at {at}")),
                None => DecodeError::Type(format!("invalid JSON: unexpected type or value at {at}")),
            }
        }
    }
}

/// Go's name for what serde expected, where it is one of Go's.
fn go_type(expected: &str) -> Option<&'static str> {
    Some(match expected {
        "u64" => "uint64",
        "u32" => "uint32",
        "u16" => "uint16",
        "u8" => "uint8",
        "i64" => "int64",
        "i32" => "int",
        "f64" | "f32" => "float64",
        "a string" => "string",
        "a boolean" => "bool",
        "a sequence" => "[]interface {}",
        "a map" => "map[string]string",
        _ => return None,
    })
}

/// The JSON type serde's message names, as Go says it.
fn json_type(serde_word: &str) -> Option<&'static str> {
    Some(match serde_word {
        "boolean" => "bool",
        "integer" | "floating" => "number",
        "string" | "character" => "string",
        "sequence" => "array",
        "map" => "object",
        "null" | "unit" => "null",
        _ => return None,
    })
}

/// The field `key` names among `fields`: itself when one is named so,
/// else the first that matches it ignoring case (Go's rule), else the key
/// (ignored by the struct, as Go ignores it).
fn field_of(key: String, fields: &'static [&'static str]) -> String {
    if fields.contains(&key.as_str()) {
        return key;
    }
    fields
        .iter()
        .find(|f| f.eq_ignore_ascii_case(&key))
        .map_or(key, |f| (*f).to_string())
}

struct Go<D> {
    inner: D,
    track: Track,
}

/// Wraps a visitor so that what it visits is decoded by Go's rules too;
/// `fields`: the struct's, when a struct was asked for.
struct GoVisitor<V> {
    visitor: V,
    track: Track,
    fields: Option<&'static [&'static str]>,
}

macro_rules! forward_primitive {
    ($($method:ident)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
                self.inner.$method(GoVisitor { visitor, track: self.track, fields: None })
            }
        )*
    };
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Go<D> {
    type Error = D::Error;

    forward_primitive! {
        deserialize_any deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64
        deserialize_i128 deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64 deserialize_u128
        deserialize_f32 deserialize_f64 deserialize_char deserialize_str deserialize_string deserialize_bytes
        deserialize_byte_buf deserialize_option deserialize_unit deserialize_seq deserialize_map
        deserialize_identifier deserialize_ignored_any
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(self, name: &'static str, visitor: V) -> Result<V::Value, D::Error> {
        self.inner.deserialize_unit_struct(
            name,
            GoVisitor {
                visitor,
                track: self.track,
                fields: None,
            },
        )
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, name: &'static str, visitor: V) -> Result<V::Value, D::Error> {
        self.inner.deserialize_newtype_struct(
            name,
            GoVisitor {
                visitor,
                track: self.track,
                fields: None,
            },
        )
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, D::Error> {
        self.inner.deserialize_tuple(
            len,
            GoVisitor {
                visitor,
                track: self.track,
                fields: None,
            },
        )
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.inner.deserialize_tuple_struct(
            name,
            len,
            GoVisitor {
                visitor,
                track: self.track,
                fields: None,
            },
        )
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.track.root(name);
        self.inner.deserialize_struct(
            name,
            fields,
            GoVisitor {
                visitor,
                track: self.track,
                fields: Some(fields),
            },
        )
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.inner.deserialize_enum(
            name,
            variants,
            GoVisitor {
                visitor,
                track: self.track,
                fields: None,
            },
        )
    }

    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}

macro_rules! forward_visit {
    ($($method:ident($ty:ty))*) => {
        $(
            fn $method<E: de::Error>(self, v: $ty) -> Result<Self::Value, E> {
                self.visitor.$method(v)
            }
        )*
    };
}

impl<'de, V: Visitor<'de>> Visitor<'de> for GoVisitor<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.visitor.expecting(f)
    }

    forward_visit! {
        visit_bool(bool) visit_i64(i64) visit_u64(u64) visit_f64(f64) visit_i128(i128) visit_u128(u128)
        visit_char(char) visit_str(&str) visit_string(String)
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        self.visitor.visit_borrowed_str(v)
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Self::Value, E> {
        self.visitor.visit_bytes(v)
    }

    fn visit_borrowed_bytes<E: de::Error>(self, v: &'de [u8]) -> Result<Self::Value, E> {
        self.visitor.visit_borrowed_bytes(v)
    }

    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Self::Value, E> {
        self.visitor.visit_byte_buf(v)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        self.visitor.visit_none()
    }

    fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
        self.visitor.visit_some(Go {
            inner: d,
            track: self.track,
        })
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        self.visitor.visit_unit()
    }

    fn visit_newtype_struct<D2: Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
        self.visitor.visit_newtype_struct(Go {
            inner: d,
            track: self.track,
        })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        self.visitor.visit_seq(GoSeq {
            inner: seq,
            track: self.track,
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        self.visitor.visit_map(GoMap {
            inner: map,
            track: self.track,
            fields: self.fields,
        })
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Self::Value, A::Error> {
        self.visitor.visit_enum(GoEnum {
            inner: data,
            track: self.track,
        })
    }
}

struct GoSeq<A> {
    inner: A,
    track: Track,
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for GoSeq<A> {
    type Error = A::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, A::Error> {
        self.inner.next_element_seed(GoSeed {
            seed,
            track: self.track.clone(),
        })
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

struct GoMap<A> {
    inner: A,
    track: Track,
    fields: Option<&'static [&'static str]>,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for GoMap<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, A::Error> {
        match self.fields {
            // A struct's key: the field it names, by Go's rule.
            Some(fields) => {
                let Some(key) = self.inner.next_key::<String>()? else {
                    return Ok(None);
                };
                let field = field_of(key, fields);
                self.track.push(field.clone());
                let key: de::value::StringDeserializer<A::Error> = field.into_deserializer();
                seed.deserialize(key).map(Some)
            }
            // A map's key (labels, options): as sent.
            None => self.inner.next_key_seed(seed),
        }
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, A::Error> {
        let result = self.inner.next_value_seed(GoSeed {
            seed,
            track: self.track.clone(),
        });
        if self.fields.is_some() && result.is_ok() {
            self.track.pop();
        }
        result
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

struct GoSeed<S> {
    seed: S,
    track: Track,
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for GoSeed<S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<S::Value, D::Error> {
        self.seed.deserialize(Go {
            inner: d,
            track: self.track,
        })
    }
}

struct GoEnum<A> {
    inner: A,
    track: Track,
}

impl<'de, A: EnumAccess<'de>> EnumAccess<'de> for GoEnum<A> {
    type Error = A::Error;
    type Variant = GoVariant<A::Variant>;

    fn variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<(S::Value, Self::Variant), A::Error> {
        let (value, variant) = self.inner.variant_seed(seed)?;
        Ok((
            value,
            GoVariant {
                inner: variant,
                track: self.track,
            },
        ))
    }
}

struct GoVariant<A> {
    inner: A,
    track: Track,
}

impl<'de, A: VariantAccess<'de>> VariantAccess<'de> for GoVariant<A> {
    type Error = A::Error;

    fn unit_variant(self) -> Result<(), A::Error> {
        self.inner.unit_variant()
    }

    fn newtype_variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<S::Value, A::Error> {
        self.inner.newtype_variant_seed(GoSeed {
            seed,
            track: self.track,
        })
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, A::Error> {
        self.inner.tuple_variant(
            len,
            GoVisitor {
                visitor,
                track: self.track,
                fields: None,
            },
        )
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        self.inner.struct_variant(
            fields,
            GoVisitor {
                visitor,
                track: self.track,
                fields: Some(fields),
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde::Deserialize;

    use super::*;

    #[derive(Deserialize, Default, Debug, PartialEq)]
    #[serde(rename_all = "PascalCase", default)]
    struct ServiceSpec {
        name: String,
        labels: HashMap<String, String>,
        mode: Mode,
        #[serde(rename = "TTY")]
        tty: bool,
        env: Vec<String>,
    }

    #[derive(Deserialize, Default, Debug, PartialEq)]
    #[serde(rename_all = "PascalCase", default)]
    struct Mode {
        replicated: Option<Replicated>,
        global: Option<Global>,
    }

    #[derive(Deserialize, Default, Debug, PartialEq)]
    #[serde(rename_all = "PascalCase", default)]
    struct Replicated {
        replicas: Option<u64>,
    }

    #[derive(Deserialize, Default, Debug, PartialEq)]
    struct Global {}

    #[test]
    fn keys_match_fields_ignoring_case_as_go_does() {
        let spec: ServiceSpec = from_slice(
            br#"{"name":"web","mode":{"replicated":{"REPLICAS":3}},"tty":true,"Labels":{"Key":"v","key":"w"},"extra":1}"#,
        )
        .unwrap();
        assert_eq!(spec.name, "web");
        assert_eq!(spec.mode.replicated, Some(Replicated { replicas: Some(3) }));
        assert!(spec.tty);
        // A map's keys are its own: kept as sent.
        assert_eq!(spec.labels.len(), 2);
        let global: ServiceSpec = from_slice(br#"{"mode":{"global":{}}}"#).unwrap();
        assert_eq!(global.mode.global, Some(Global {}));
        assert_eq!(global.mode.replicated, None);
    }

    #[test]
    fn wrong_types_get_gos_words_without_the_value() {
        let err = from_slice::<ServiceSpec>(br#"{"Mode":{"Replicated":{"Replicas":"SECRETVALUE"}}}"#).unwrap_err();
        assert_eq!(
            err,
            DecodeError::Type(
                "json: cannot unmarshal string into Go struct field ServiceSpec.Mode.Replicated.Replicas of type uint64"
                    .into()
            )
        );
        let err = from_slice::<ServiceSpec>(br#"{"env":"SECRETVALUE"}"#).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("json: cannot unmarshal string into Go struct field ServiceSpec.Env"),
            "{err}"
        );
        let err = from_slice::<ServiceSpec>(br#"{"Name": "SECRETVALUE"#).unwrap_err();
        assert!(matches!(err, DecodeError::Syntax(_)), "{err}");
        assert!(!err.to_string().contains("SECRETVALUE"));
        let err = from_slice::<ServiceSpec>(br#"{"Name":"a"} trailing"#).unwrap_err();
        assert!(matches!(err, DecodeError::Syntax(_)), "{err}");
    }
}
