//! The little BSON the MongoDB login needs: documents of strings, numbers, booleans, binary and
//! nested documents, written and read. Not a general BSON library (the test binary stays small).

/// A BSON value as far as the login cares.
#[derive(Debug, Clone, PartialEq)]
pub enum Bson {
    Double(f64),
    Str(String),
    Doc(Doc),
    Array(Vec<Bson>),
    Binary(Vec<u8>),
    Bool(bool),
    Int32(i32),
    Int64(i64),
    Null,
    /// A type the login never reads (timestamps, object ids, …), skipped.
    Other,
}

/// An ordered document (the command name must come first).
pub type Doc = Vec<(String, Bson)>;

/// Looks up a key.
pub fn get<'a>(doc: &'a Doc, key: &str) -> Option<&'a Bson> {
    doc.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

impl Bson {
    /// A number as f64 (`ok` comes as double or int).
    pub fn number(&self) -> Option<f64> {
        match self {
            Bson::Double(d) => Some(*d),
            Bson::Int32(i) => Some(f64::from(*i)),
            Bson::Int64(i) => Some(*i as f64),
            _ => None,
        }
    }
}

/// Encodes a document.
pub fn encode(doc: &Doc) -> Vec<u8> {
    let mut body = Vec::new();
    for (key, value) in doc {
        let kind = match value {
            Bson::Double(_) => 0x01,
            Bson::Str(_) => 0x02,
            Bson::Doc(_) => 0x03,
            Bson::Array(_) => 0x04,
            Bson::Binary(_) => 0x05,
            Bson::Bool(_) => 0x08,
            Bson::Null | Bson::Other => 0x0a,
            Bson::Int32(_) => 0x10,
            Bson::Int64(_) => 0x12,
        };
        body.push(kind);
        body.extend_from_slice(key.as_bytes());
        body.push(0);
        match value {
            Bson::Double(d) => body.extend_from_slice(&d.to_le_bytes()),
            Bson::Str(s) => {
                body.extend_from_slice(&((s.len() + 1) as i32).to_le_bytes());
                body.extend_from_slice(s.as_bytes());
                body.push(0);
            }
            Bson::Doc(d) => body.extend_from_slice(&encode(d)),
            Bson::Array(items) => {
                let as_doc: Doc = items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (i.to_string(), v.clone()))
                    .collect();
                body.extend_from_slice(&encode(&as_doc));
            }
            Bson::Binary(b) => {
                body.extend_from_slice(&(b.len() as i32).to_le_bytes());
                body.push(0); // generic subtype
                body.extend_from_slice(b);
            }
            Bson::Bool(b) => body.push(u8::from(*b)),
            Bson::Null | Bson::Other => {}
            Bson::Int32(i) => body.extend_from_slice(&i.to_le_bytes()),
            Bson::Int64(i) => body.extend_from_slice(&i.to_le_bytes()),
        }
    }
    let mut out = ((body.len() + 5) as i32).to_le_bytes().to_vec();
    out.extend_from_slice(&body);
    out.push(0);
    out
}

/// Nesting a reply may have: a server's document nested a million deep must not overflow the stack.
const MAX_DEPTH: usize = 16;

/// Decodes one document from the start of `bytes`; None when malformed or nested too deep.
pub fn decode(bytes: &[u8]) -> Option<Doc> {
    decode_nested(bytes, 0)
}

fn decode_nested(bytes: &[u8], depth: usize) -> Option<Doc> {
    if depth > MAX_DEPTH {
        return None;
    }
    let len = usize::try_from(i32::from_le_bytes(bytes.get(0..4)?.try_into().ok()?)).ok()?;
    let body = bytes.get(4..len.checked_sub(1)?)?;
    let mut doc = Vec::new();
    let mut i = 0;
    while i < body.len() {
        let kind = body[i];
        let end = i + 1 + body[i + 1..].iter().position(|b| *b == 0)?;
        let key = String::from_utf8_lossy(&body[i + 1..end]).into_owned();
        i = end + 1;
        let i32_at = |at: usize| -> Option<i32> {
            Some(i32::from_le_bytes(body.get(at..at + 4)?.try_into().ok()?))
        };
        let (value, size) = match kind {
            0x01 => (
                Bson::Double(f64::from_le_bytes(body.get(i..i + 8)?.try_into().ok()?)),
                8,
            ),
            0x02 => {
                let n = usize::try_from(i32_at(i)?).ok()?;
                let s = body.get(i + 4..i + 4 + n.checked_sub(1)?)?;
                (Bson::Str(String::from_utf8_lossy(s).into_owned()), 4 + n)
            }
            0x03 | 0x04 => {
                let n = usize::try_from(i32_at(i)?).ok()?;
                let inner = decode_nested(body.get(i..i + n)?, depth + 1)?;
                let value = if kind == 0x03 {
                    Bson::Doc(inner)
                } else {
                    Bson::Array(inner.into_iter().map(|(_, v)| v).collect())
                };
                (value, n)
            }
            0x05 => {
                let n = usize::try_from(i32_at(i)?).ok()?;
                (Bson::Binary(body.get(i + 5..i + 5 + n)?.to_vec()), 5 + n)
            }
            0x07 => (Bson::Other, 12),
            0x08 => (Bson::Bool(*body.get(i)? != 0), 1),
            0x09 | 0x11 | 0x12 => {
                let v = i64::from_le_bytes(body.get(i..i + 8)?.try_into().ok()?);
                (
                    if kind == 0x12 {
                        Bson::Int64(v)
                    } else {
                        Bson::Other
                    },
                    8,
                )
            }
            0x0a => (Bson::Null, 0),
            0x10 => (Bson::Int32(i32_at(i)?), 4),
            0x13 => (Bson::Other, 16),
            _ => return None,
        };
        doc.push((key, value));
        i += size;
    }
    Some(doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_nested_too_deep_or_with_negative_lengths_is_refused_without_a_panic() {
        let nest = |depth: usize| {
            let mut doc: Doc = vec![("ok".into(), Bson::Double(1.0))];
            for _ in 0..depth {
                doc = vec![("a".into(), Bson::Doc(doc))];
            }
            encode(&doc)
        };
        assert!(decode(&nest(MAX_DEPTH)).is_some());
        assert!(decode(&nest(MAX_DEPTH + 1)).is_none());
        // Deep nesting written byte by byte (a nested `Doc` would overflow the test's own stack).
        let mut deep = nest(0);
        for _ in 0..3000 {
            let mut outer = ((deep.len() + 8) as i32).to_le_bytes().to_vec();
            outer.extend_from_slice(b"\x03a\x00");
            outer.extend_from_slice(&deep);
            outer.push(0);
            deep = outer;
        }
        assert!(decode(&deep).is_none(), "no stack overflow");
        // A string whose length says -1 (4 GiB as unsigned).
        let mut doc = b"\x10\x00\x00\x00\x02s\x00\xff\xff\xff\xffx\x00\x00".to_vec();
        doc[0] = doc.len() as u8;
        assert!(decode(&doc).is_none());
    }

    #[test]
    fn round_trip() {
        let doc: Doc = vec![
            ("saslStart".into(), Bson::Int32(1)),
            ("mechanism".into(), Bson::Str("SCRAM-SHA-256".into())),
            ("payload".into(), Bson::Binary(b"n,,n=app,r=abc".to_vec())),
            (
                "options".into(),
                Bson::Doc(vec![("skipEmptyExchange".into(), Bson::Bool(true))]),
            ),
            (
                "mechs".into(),
                Bson::Array(vec![Bson::Str("a".into()), Bson::Str("b".into())]),
            ),
            ("ok".into(), Bson::Double(1.0)),
            ("big".into(), Bson::Int64(1 << 40)),
        ];
        let bytes = encode(&doc);
        assert_eq!(
            i32::from_le_bytes(bytes[0..4].try_into().unwrap()) as usize,
            bytes.len()
        );
        assert_eq!(decode(&bytes).unwrap(), doc);
        assert_eq!(get(&doc, "ok").and_then(Bson::number), Some(1.0));
        assert!(decode(&bytes[..bytes.len() - 3]).is_none());
        assert!(decode(b"\x05\x00").is_none());
    }

    #[test]
    fn a_document_written_by_the_reference_encoder_decodes() {
        // {"hello": 1, "$db": "admin"} as pymongo's bson.encode writes it.
        let bytes = b"\x1f\x00\x00\x00\x10hello\x00\x01\x00\x00\x00\x02$db\x00\x06\x00\x00\x00admin\x00\x00";
        let doc = decode(bytes).unwrap();
        assert_eq!(
            doc,
            vec![
                ("hello".into(), Bson::Int32(1)),
                ("$db".into(), Bson::Str("admin".into()))
            ]
        );
        assert_eq!(encode(&doc), bytes.to_vec());
    }
}
