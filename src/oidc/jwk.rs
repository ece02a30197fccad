//! Reading a JWK Set (RFC 7517) into verification keys, one key at a time: a key this
//! crate cannot use is skipped, never the set.

use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use serde_json::value::RawValue;

/// The most keys taken from one set; a provider publishes a handful.
pub(crate) const MAX_KEYS: usize = 64;

/// A key of a provider's set, pinned to one algorithm.
pub(crate) struct RemoteKey {
    pub(crate) kid: Option<String>,
    pub(crate) algorithm: Algorithm,
    pub(crate) key: DecodingKey,
    /// What identifies the key material (`kty` and its public parameters), so a refresh
    /// can tell a key that left the set from one that stayed.
    pub(crate) material: String,
}

/// Why a key was left out of the set; counted, never fatal to the set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Skipped {
    /// `use` is not `sig`, or `key_ops` has no `verify`.
    NotForSignatures,
    /// A symmetric (`oct`) key: a provider's shared secret is never a verification key
    /// here.
    Symmetric,
    /// A key type, curve or algorithm this crate does not verify with (e.g. `RSA-OAEP`).
    Unsupported,
    /// Missing or malformed parameters, an RSA modulus under 2048 bits, or an `alg`
    /// that does not fit the key type.
    Invalid,
    /// A second key with a `kid` already in the set.
    DuplicateKid,
    /// Past [`MAX_KEYS`].
    TooMany,
}

/// The usable keys of a set, and how many were skipped.
pub(crate) struct ParsedSet {
    pub(crate) keys: Vec<RemoteKey>,
    pub(crate) skipped: Vec<Skipped>,
}

/// Why a document is not a JWK Set at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SetError {
    /// Not a JSON object with a `keys` array.
    NotASet,
    /// A set, but not one key in it is usable.
    NoUsableKey,
}

/// Parses `body` as a JWK Set. Each key is read on its own, so one key this crate
/// cannot read (a Keycloak `RSA-OAEP` encryption key, an `oct` key, a curve it does
/// not know) is skipped and the rest are kept.
pub(crate) fn parse_set(body: &[u8]) -> Result<ParsedSet, SetError> {
    #[derive(Deserialize)]
    struct Set<'a> {
        #[serde(borrow)]
        keys: Vec<&'a RawValue>,
    }
    let set: Set<'_> = serde_json::from_slice(body).map_err(|_| SetError::NotASet)?;
    let mut keys: Vec<RemoteKey> = Vec::new();
    let mut skipped = Vec::new();
    for raw in set.keys {
        if keys.len() == MAX_KEYS {
            skipped.push(Skipped::TooMany);
            continue;
        }
        match parse_key(raw.get()) {
            Ok(key) => {
                if key.kid.is_some() && keys.iter().any(|k| k.kid == key.kid) {
                    skipped.push(Skipped::DuplicateKid);
                } else {
                    keys.push(key);
                }
            }
            Err(why) => skipped.push(why),
        }
    }
    if keys.is_empty() {
        return Err(SetError::NoUsableKey);
    }
    Ok(ParsedSet { keys, skipped })
}

/// One JWK. Every member is optional here, so the checks below say which rule a key
/// broke; a member of the wrong JSON type makes the key [`Skipped::Invalid`].
#[derive(Deserialize)]
struct Jwk {
    kty: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    key_ops: Option<Vec<String>>,
    alg: Option<String>,
    kid: Option<String>,
    crv: Option<String>,
    n: Option<String>,
    e: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

fn parse_key(json: &str) -> Result<RemoteKey, Skipped> {
    let jwk: Jwk = serde_json::from_str(json).map_err(|_| Skipped::Invalid)?;
    if jwk.use_.as_deref().is_some_and(|u| u != "sig")
        || jwk
            .key_ops
            .as_ref()
            .is_some_and(|ops| !ops.iter().any(|op| op == "verify"))
    {
        return Err(Skipped::NotForSignatures);
    }
    let kty = jwk.kty.as_deref().ok_or(Skipped::Invalid)?;
    let alg = jwk.alg.as_deref();
    let (algorithm, key, material) = match kty {
        "RSA" => {
            let algorithm = match alg {
                None => Algorithm::RS256,
                Some("RS256") => Algorithm::RS256,
                Some("RS384") => Algorithm::RS384,
                Some("RS512") => Algorithm::RS512,
                Some("PS256") => Algorithm::PS256,
                Some("PS384") => Algorithm::PS384,
                Some("PS512") => Algorithm::PS512,
                Some(_) => return Err(Skipped::Unsupported),
            };
            let (n, e) = (
                jwk.n.as_deref().ok_or(Skipped::Invalid)?,
                jwk.e.as_deref().ok_or(Skipped::Invalid)?,
            );
            let modulus = b64(n)?;
            let exponent = b64(e)?;
            // A leading zero byte does not count towards the size.
            let bits = modulus
                .iter()
                .position(|&b| b != 0)
                .map_or(0, |i| (modulus.len() - i) * 8);
            if bits < 2048 || exponent.is_empty() || exponent.len() > 8 {
                return Err(Skipped::Invalid);
            }
            (
                algorithm,
                DecodingKey::from_rsa_raw_components(&modulus, &exponent),
                format!("RSA {n} {e}"),
            )
        }
        "EC" => {
            let (algorithm, len) = match (jwk.crv.as_deref(), alg) {
                (Some("P-256"), None | Some("ES256")) => (Algorithm::ES256, 32),
                (Some("P-384"), None | Some("ES384")) => (Algorithm::ES384, 48),
                (Some("P-256" | "P-384"), Some(_)) => return Err(Skipped::Invalid),
                _ => return Err(Skipped::Unsupported),
            };
            let (x, y) = (
                jwk.x.as_deref().ok_or(Skipped::Invalid)?,
                jwk.y.as_deref().ok_or(Skipped::Invalid)?,
            );
            if b64(x)?.len() != len || b64(y)?.len() != len {
                return Err(Skipped::Invalid);
            }
            let key = DecodingKey::from_ec_components(x, y).map_err(|_| Skipped::Invalid)?;
            (algorithm, key, format!("EC {x} {y}"))
        }
        "OKP" => {
            match (jwk.crv.as_deref(), alg) {
                (Some("Ed25519"), None | Some("EdDSA" | "Ed25519")) => {}
                (Some("Ed25519"), Some(_)) => return Err(Skipped::Invalid),
                _ => return Err(Skipped::Unsupported),
            }
            let x = jwk.x.as_deref().ok_or(Skipped::Invalid)?;
            if b64(x)?.len() != 32 {
                return Err(Skipped::Invalid);
            }
            let key = DecodingKey::from_ed_components(x).map_err(|_| Skipped::Invalid)?;
            (Algorithm::EdDSA, key, format!("OKP {x}"))
        }
        "oct" => return Err(Skipped::Symmetric),
        _ => return Err(Skipped::Unsupported),
    };
    Ok(RemoteKey {
        kid: jwk.kid,
        algorithm,
        key,
        material,
    })
}

/// base64url without padding (RFC 7515 §2), as JWKs carry their parameters.
fn b64(s: &str) -> Result<Vec<u8>, Skipped> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| Skipped::Invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 2048-bit modulus's worth of base64url (the value is not a real key: parsing
    /// does not check primality).
    fn n2048() -> String {
        "u".repeat(342) + "w"
    }

    fn rsa(extra: &str) -> String {
        format!(r#"{{"kty":"RSA","n":"{}","e":"AQAB"{extra}}}"#, n2048())
    }

    fn ec(crv: &str, len: usize, extra: &str) -> String {
        use base64::Engine as _;
        let c = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(vec![7u8; len]);
        format!(r#"{{"kty":"EC","crv":"{crv}","x":"{c}","y":"{c}"{extra}}}"#)
    }

    fn set(keys: &[String]) -> Vec<u8> {
        format!(r#"{{"keys":[{}]}}"#, keys.join(",")).into_bytes()
    }

    #[test]
    fn algorithms_come_from_alg_else_from_the_key_type() {
        let parsed = parse_set(&set(&[
            rsa(r#","kid":"a""#),
            rsa(r#","kid":"b","alg":"PS384""#),
            ec("P-256", 32, r#","kid":"c""#),
            ec("P-384", 48, r#","kid":"d""#),
            r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":"e"}"#.into(),
        ]))
        .unwrap();
        let algs: Vec<_> = parsed.keys.iter().map(|k| k.algorithm).collect();
        assert_eq!(
            algs,
            [
                Algorithm::RS256,
                Algorithm::PS384,
                Algorithm::ES256,
                Algorithm::ES384,
                Algorithm::EdDSA
            ]
        );
        assert!(parsed.skipped.is_empty());
    }

    #[test]
    fn one_bad_key_never_discards_the_set() {
        let parsed = parse_set(&set(&[
            rsa(r#","kid":"enc","alg":"RSA-OAEP","use":"enc""#),
            rsa(r#","kid":"oaep","alg":"RSA-OAEP""#),
            rsa(r#","kid":"ops","key_ops":["encrypt"]"#),
            r#"{"kty":"oct","k":"c2VjcmV0","kid":"hmac"}"#.into(),
            r#"{"kty":"EC","crv":"secp256k1","x":"AA","y":"AA"}"#.into(),
            ec("P-256", 31, r#","kid":"short""#),
            ec("P-256", 32, r#","kid":"mismatch","alg":"ES384""#),
            r#"{"kty":"RSA","n":"AQAB","e":"AQAB","kid":"small"}"#.into(),
            r#"{"kty":"RSA","n":"!!!","e":"AQAB"}"#.into(),
            r#"{"kty":42}"#.into(),
            r#""not an object""#.into(),
            r#"{"kid":"no-kty"}"#.into(),
            rsa(r#","kid":"good","use":"sig","key_ops":["verify"]"#),
            rsa(r#","kid":"good""#),
        ]))
        .unwrap();
        assert_eq!(parsed.keys.len(), 1);
        assert_eq!(parsed.keys[0].kid.as_deref(), Some("good"));
        use Skipped::*;
        assert_eq!(
            parsed.skipped,
            [
                NotForSignatures,
                Unsupported,
                NotForSignatures,
                Symmetric,
                Unsupported,
                Invalid,
                Invalid,
                Invalid,
                Invalid,
                Invalid,
                Invalid,
                Invalid,
                DuplicateKid
            ]
        );
    }

    #[test]
    fn what_is_not_a_set_is_an_error() {
        for body in [
            &b""[..],
            b"garbage",
            b"[]",
            b"{}",
            b"{\"keys\":{}}",
            b"{\"keys\":[1,2]}",
        ] {
            assert!(
                parse_set(body).is_err(),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
        assert_eq!(
            parse_set(b"{\"keys\":[]}").err(),
            Some(SetError::NoUsableKey)
        );
    }

    #[test]
    fn a_huge_set_is_capped() {
        let keys: Vec<String> = (0..MAX_KEYS + 5)
            .map(|i| rsa(&format!(r#","kid":"k{i}""#)))
            .collect();
        let parsed = parse_set(&set(&keys)).unwrap();
        assert_eq!(parsed.keys.len(), MAX_KEYS);
        assert_eq!(parsed.skipped, [Skipped::TooMany; 5]);
    }
}
