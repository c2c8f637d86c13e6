//! `jsonb` values built in binary form.
//!
//! pgrx's `JsonB` turns a serde value into a datum by printing it as JSON text
//! and handing the text to `jsonb_in`, which lexes and parses it again: on the
//! login path that was ~7 % of a login's instructions (the attributes, the
//! audit details and the returned attributes; `scripts/bench-instructions`).
//! `Jsonb` builds the same datum directly with `pushJsonbValue`, the way
//! PostgreSQL's own `jsonb_build_object` does.

use std::borrow::Cow;
use std::ffi::CString;

use pgrx::callconv::{BoxRet, FcInfo};
use pgrx::datum::Datum;
use pgrx::fcinfo::direct_function_call_as_datum;
use pgrx::pg_sys::{self, jbvType, JsonbIteratorToken as Token};
use pgrx::pgrx_sql_entity_graph::metadata::{
    ArgumentError, ReturnsError, ReturnsRef, SqlMappingRef, SqlTranslatable, TypeOrigin,
};
use pgrx::IntoDatum;

/// A serde value that becomes a `jsonb` datum without a text round trip
/// (borrowed where the value is still needed afterwards).
pub struct Jsonb<'a>(pub Cow<'a, serde_json::Value>);

impl Jsonb<'static> {
    pub fn owned(value: serde_json::Value) -> Self {
        Jsonb(Cow::Owned(value))
    }
}

impl<'a> Jsonb<'a> {
    pub fn borrowed(value: &'a serde_json::Value) -> Self {
        Jsonb(Cow::Borrowed(value))
    }
}

impl IntoDatum for Jsonb<'_> {
    fn into_datum(self) -> Option<pg_sys::Datum> {
        // SAFETY: every JsonbValue pushed points at memory that lives until
        // JsonbValueToJsonb has copied it (`self.0` and the palloc'd
        // numerics); the result is palloc'd in the current memory context.
        unsafe {
            let mut state: *mut pg_sys::JsonbParseState = std::ptr::null_mut();
            let top = match self.0.as_ref() {
                serde_json::Value::Object(_) | serde_json::Value::Array(_) => {
                    push(&mut state, self.0.as_ref(), None)
                }
                // A scalar at top level is stored as a one-element "raw scalar" array.
                scalar => {
                    let mut raw: pg_sys::JsonbValue = std::mem::zeroed();
                    raw.type_ = jbvType::jbvArray;
                    raw.val.array.rawScalar = true;
                    pg_sys::pushJsonbValue(&mut state, Token::WJB_BEGIN_ARRAY, &mut raw);
                    push(&mut state, scalar, Some(Token::WJB_ELEM));
                    pg_sys::pushJsonbValue(&mut state, Token::WJB_END_ARRAY, std::ptr::null_mut())
                }
            };
            Some(pg_sys::Datum::from(pg_sys::JsonbValueToJsonb(top)))
        }
    }

    fn type_oid() -> pg_sys::Oid {
        pg_sys::JSONBOID
    }
}

/// Pushes `value`: a container as its begin/end tokens around its members,
/// a scalar with `token` (WJB_VALUE in an object, WJB_ELEM in an array).
/// Returns what the last push returned (the finished top-level value).
unsafe fn push(
    state: &mut *mut pg_sys::JsonbParseState,
    value: &serde_json::Value,
    token: Option<Token::Type>,
) -> *mut pg_sys::JsonbValue {
    match value {
        serde_json::Value::Object(map) => {
            pg_sys::pushJsonbValue(state, Token::WJB_BEGIN_OBJECT, std::ptr::null_mut());
            for (key, member) in map {
                let mut k = string(key);
                pg_sys::pushJsonbValue(state, Token::WJB_KEY, &mut k);
                push(state, member, Some(Token::WJB_VALUE));
            }
            pg_sys::pushJsonbValue(state, Token::WJB_END_OBJECT, std::ptr::null_mut())
        }
        serde_json::Value::Array(items) => {
            pg_sys::pushJsonbValue(state, Token::WJB_BEGIN_ARRAY, std::ptr::null_mut());
            for item in items {
                push(state, item, Some(Token::WJB_ELEM));
            }
            pg_sys::pushJsonbValue(state, Token::WJB_END_ARRAY, std::ptr::null_mut())
        }
        scalar => {
            let mut v = scalar_value(scalar);
            pg_sys::pushJsonbValue(state, token.unwrap_or(Token::WJB_ELEM), &mut v)
        }
    }
}

unsafe fn string(s: &str) -> pg_sys::JsonbValue {
    // jsonb_in refuses \u0000 (text cannot hold it); so does this builder.
    if s.contains('\0') {
        pgrx::error!("saml_jit: a jsonb string cannot contain the character U+0000");
    }
    let mut v: pg_sys::JsonbValue = std::mem::zeroed();
    v.type_ = jbvType::jbvString;
    v.val.string.len = s.len() as _;
    // pushJsonbValue keeps the pointer; JsonbValueToJsonb copies the bytes.
    v.val.string.val = s.as_ptr() as *mut _;
    v
}

unsafe fn scalar_value(value: &serde_json::Value) -> pg_sys::JsonbValue {
    let mut v: pg_sys::JsonbValue = std::mem::zeroed();
    match value {
        serde_json::Value::Null => v.type_ = jbvType::jbvNull,
        serde_json::Value::Bool(b) => {
            v.type_ = jbvType::jbvBool;
            v.val.boolean = *b;
        }
        serde_json::Value::String(s) => v = string(s),
        serde_json::Value::Number(n) => {
            // serde prints numbers as JSON does; numeric_in reads that form.
            let text = CString::new(n.to_string()).expect("a number has no NUL");
            let numeric = direct_function_call_as_datum(
                pg_sys::numeric_in,
                &[
                    Some(pg_sys::Datum::from(text.as_ptr())),
                    Some(pg_sys::Datum::from(pg_sys::InvalidOid)),
                    Some(pg_sys::Datum::from(-1i32)),
                ],
            )
            .expect("numeric_in returns a value");
            v.type_ = jbvType::jbvNumeric;
            v.val.numeric = numeric.cast_mut_ptr();
        }
        serde_json::Value::Object(_) | serde_json::Value::Array(_) => {
            unreachable!("containers are pushed by push()")
        }
    }
    v
}

// The SQL type is plain `jsonb`, as for pgrx's own JsonB.
unsafe impl SqlTranslatable for Jsonb<'_> {
    const TYPE_IDENT: &'static str = pgrx::pgrx_resolved_type!(Jsonb);
    const TYPE_ORIGIN: TypeOrigin = TypeOrigin::External;
    const ARGUMENT_SQL: Result<SqlMappingRef, ArgumentError> = Ok(SqlMappingRef::literal("jsonb"));
    const RETURN_SQL: Result<ReturnsRef, ReturnsError> =
        Ok(ReturnsRef::One(SqlMappingRef::literal("jsonb")));
}

unsafe impl BoxRet for Jsonb<'_> {
    unsafe fn box_into<'fcx>(self, fcinfo: &mut FcInfo<'fcx>) -> Datum<'fcx> {
        match self.into_datum() {
            Some(datum) => unsafe { fcinfo.return_raw_datum(datum) },
            None => fcinfo.return_null(),
        }
    }
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;
    use pgrx::JsonB;
    use serde_json::json;

    use super::Jsonb;

    /// The binary build must give the datum jsonb_in gives for the same text:
    /// equal as jsonb, printed the same, the same bytes on disk.
    #[pg_test]
    fn binary_jsonb_equals_jsonb_in() {
        let values = [
            json!({}),
            json!([]),
            json!({"b": 1, "a": [true, false, null], "c": {"z": "é 雪 \u{1F600}", "y": ""}}),
            json!({"memberOf": ["CN=a,OU=Groups", "CN=b"], "mail": ["x@example.com"]}),
            json!([1, -2.5, 1e300, 12345678901234567890u64, 0.1, -0]),
            json!("a top-level string"),
            json!(42),
            json!(null),
            json!({"quote\"and\\back": "line\nbreak\u{0001}"}),
            json!({"nested": [[[{"deep": [1, {"x": null}]}]]]}),
        ];
        for value in values {
            let same = Spi::get_one_with_args::<bool>(
                "SELECT $1 = $2 AND $1::text = $2::text
                        AND jsonb_send($1) = jsonb_send($2) AND pg_column_size($1) = pg_column_size($2)",
                &[Jsonb::borrowed(&value).into(), JsonB(value.clone()).into()],
            )
            .unwrap();
            assert_eq!(same, Some(true), "{value}");
        }
    }

    #[pg_test(error = "saml_jit: a jsonb string cannot contain the character U+0000")]
    fn a_nul_character_is_refused_as_jsonb_in_refuses_it() {
        let value = json!({"key": "a\u{0}b"});
        Spi::get_one_with_args::<bool>("SELECT $1 IS NOT NULL", &[Jsonb::borrowed(&value).into()])
            .unwrap();
    }
}
