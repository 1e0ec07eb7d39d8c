//! For the fuzz targets in `fuzz/` (cargo-fuzz) only: thin entry points that hand arbitrary
//! input to the crate's parsers of outside input that are not public API, exactly as the
//! code that reads a registry's, token service's or signer's bytes calls them. Hidden from
//! the documentation and outside any compatibility promise; nothing else may use it.
//!
//! Parsers that are public already (`Reference::parse`, `Manifest::parse`,
//! `registry::parse_json`, `Config::load_from`, `trust::notary::metadata`,
//! `TrustedRoot::from_json`) are fuzzed through their public API, not from here.

use std::time::Duration;

use url::Url;

use crate::config::Timeouts;
use crate::digest::Digest;
use crate::registry::body::{HttpResponse, WatchedBody};
use crate::registry::{ErrorDetail, RegistryError};
use crate::trust::base64;
use crate::trust::cosign::bundle;
use crate::trust::cosign::simple_signing;

/// The URL parsers are told a document came from (it only appears in their errors).
const URL: &str = "https://registry.example/v2/fuzz/manifests/latest";

fn url() -> Url {
    Url::parse(URL).expect("a valid URL")
}

/// A response with one header (when its value is a valid header value) and a body, as the
/// registry client receives it.
fn response(status: u16, header: Option<(&str, &[u8])>, body: &[u8]) -> Option<HttpResponse> {
    let mut builder = ureq::http::Response::builder().status(status);
    if let Some((name, value)) = header {
        builder = builder.header(name, ureq::http::HeaderValue::from_bytes(value).ok()?);
    }
    let body = WatchedBody::new(ureq::Body::builder().data(body), &Timeouts::default());
    builder.body(body).ok()
}

/// `WWW-Authenticate` values of a 401, in order (`registry::auth::parse_challenges`): the
/// challenge answered (its `Debug`), `None` when none can be, or why a Bearer one is unusable.
pub fn www_authenticate<'a>(
    headers: impl Iterator<Item = &'a str>,
) -> Result<Option<String>, String> {
    crate::registry::auth::parse_challenges(headers)
        .map(|challenge| challenge.map(|challenge| format!("{challenge:?}")))
}

/// A token service's answer (`TokenResponse`, then `into_token`): the token and its lifetime.
pub fn token_response(body: &[u8]) -> Result<(String, Option<u64>), String> {
    let parsed: crate::registry::auth::TokenResponse =
        serde_json::from_slice(body).map_err(|error| error.to_string())?;
    parsed.into_token().map_err(str::to_owned)
}

/// A `Content-Range` value (`registry::parse_content_range`): `(start, total)`.
pub fn content_range(value: &str) -> Option<(u64, Option<u64>)> {
    crate::registry::parse_content_range(value)
}

/// A `Retry-After` value on a 429 (`registry::transport::retry_after`); `None` also when the
/// bytes cannot be a header value at all (the HTTP stack never hands those over).
pub fn retry_after(value: &[u8]) -> Option<Duration> {
    let response = response(429, Some(("retry-after", value)), b"")?;
    crate::registry::transport::retry_after(&response)
}

/// A registry's error body (`registry::transport::error_details`), and the error it makes,
/// displayed.
pub fn error_body(body: &[u8]) -> (Vec<ErrorDetail>, String) {
    let Some(response) = response(500, None, body) else {
        return (Vec::new(), String::new());
    };
    let errors = crate::registry::transport::error_details(response);
    let shown = RegistryError::Status {
        url: URL.to_owned(),
        status: 500,
        errors: errors.clone(),
    }
    .to_string();
    (errors, shown)
}

/// A manifest's media type, from its body and `Content-Type` (`registry::manifest_media_type`).
pub fn manifest_media_type(bytes: &[u8], content_type: Option<&str>) -> Result<String, String> {
    crate::registry::manifest_media_type(bytes, content_type, &url())
        .map_err(|error| error.to_string())
}

/// Base64 as content trust decodes it (`trust::base64::decode`: signatures, keys, hashes).
pub fn trust_base64(text: &str) -> Option<Vec<u8>> {
    base64::decode(text).ok()
}

/// A cosign simple-signing payload (`simple_signing::parse_simple_signing`).
pub fn simple_signing(payload: &[u8]) -> Result<(), String> {
    simple_signing::parse_simple_signing(payload).map(drop)
}

/// A keyless `.sig` layer's certificate and Rekor bundle annotations
/// (`simple_signing::legacy_keyless_material`): the certificate's DER length.
pub fn cosign_keyless_annotations(
    certificate: &str,
    rekor_bundle: Option<&str>,
) -> Result<usize, String> {
    let rekor_bundle = rekor_bundle.map(str::to_owned);
    simple_signing::legacy_keyless_material("sha256:fuzz", certificate, rekor_bundle.as_ref())
        .map(|(der, _)| der.len())
        .map_err(|rejection| rejection.to_string())
}

/// A sigstore bundle, read as `bundle::check_bundle` reads it before any signature is
/// checked: the JSON, the keyless material (certificate, log entries), the DSSE envelope
/// (payload, its PAE, signatures) or the message signature; then the in-toto statement, as
/// if every signature had verified, against `digest`.
pub fn sigstore_bundle(bytes: &[u8], digest: &Digest) -> Result<(), String> {
    let parsed: bundle::Bundle =
        serde_json::from_slice(bytes).map_err(|error| format!("not bundle JSON: {error}"))?;
    parsed.verification_material.keyless()?;
    match (parsed.dsse_envelope, parsed.message_signature) {
        (Some(envelope), _) => {
            let payload = base64::decode(&envelope.payload)
                .map_err(|_| "DSSE payload is not base64".to_owned())?;
            let pae = bundle::pre_authentication_encoding(&envelope.payload_type, &payload);
            let prefix = format!("DSSEv1 {} ", envelope.payload_type.len());
            assert!(pae.starts_with(prefix.as_bytes()) && pae.ends_with(&payload));
            for signature in &envelope.signatures {
                let _ = base64::decode(&signature.sig);
            }
            bundle::statement_claim(&envelope.payload_type, &payload, digest).map(drop)
        }
        (None, Some(message)) => base64::decode(&message.signature)
            .map(drop)
            .map_err(|_| "message signature is not base64".to_owned()),
        (None, None) => Err("neither a DSSE envelope nor a message signature".to_owned()),
    }
}

/// A DER certificate as keyless cosign and Notary read one: `x509::parse_certificate` (the
/// leaf of a keyless signature, before anything about it is checked), its key
/// (`PublicKey::from_der`), then what is checked of a Fulcio leaf (`keyless::check_leaf` at
/// `time`, `keyless::identity_of`, its embedded SCTs with `sct::check_embedded` for no CT
/// log) and of a CA (`x509::check_ca`, `x509::signed_by` itself).
pub fn certificate(der: &[u8], time: u64) -> Result<(), String> {
    use x509_cert::der::Encode as _;

    let certificate = crate::trust::x509::parse_certificate(der)?;
    let spki = certificate
        .tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .map_err(|error| error.to_string())?;
    let _ = crate::trust::keys::PublicKey::from_der(&spki).map_err(|e| e.to_string());
    let _ = crate::trust::keyless::check_leaf(&certificate, time);
    let _ = crate::trust::keyless::identity_of(&certificate);
    let _ = crate::trust::sct::check_embedded(&[], &certificate, &certificate);
    let _ = crate::trust::x509::check_ca(&certificate, 1);
    let _ = crate::trust::x509::signed_by(&certificate, &certificate);
    Ok(())
}

/// The entry points on the seeds of their fuzz targets (`fuzz/corpus/<target>/`): each seed
/// reaches the parser's success path, so a seed, or an entry point, that stops doing so shows.
#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::{Path, PathBuf};

    use super::*;

    fn seed(target: &str, name: &str) -> Vec<u8> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fuzz/corpus")
            .join(target)
            .join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn text(bytes: &[u8]) -> &str {
        std::str::from_utf8(bytes).unwrap()
    }

    #[test]
    fn registry_seeds_parse() {
        let hub = seed("www_authenticate", "docker_hub.txt");
        let challenge = www_authenticate(text(&hub).split('\n')).unwrap().unwrap();
        assert!(challenge.starts_with("Bearer"), "{challenge}");
        let several = seed("www_authenticate", "several.txt");
        assert!(www_authenticate(text(&several).split('\n'))
            .unwrap()
            .is_some());
        assert_eq!(
            token_response(&seed("token_response", "access_token.json")),
            Ok(("abc".to_owned(), Some(u64::MAX)))
        );
        assert_eq!(content_range("bytes 100-199/200"), Some((100, Some(200))));
        assert_eq!(retry_after(b" 120 "), Some(Duration::from_secs(120)));
        let (errors, shown) = error_body(&seed("error_body", "two.json"));
        assert_eq!(errors.len(), 2);
        assert!(
            shown.contains("UNAUTHORIZED: authentication required"),
            "{shown}"
        );
        let manifest = seed("manifest", "oci_manifest_no_content_type.json");
        assert!(manifest_media_type(&manifest[1..], None).is_err());
        assert_eq!(
            manifest_media_type(&manifest[1..], Some(crate::registry::OCI_MANIFEST)).as_deref(),
            Ok(crate::registry::OCI_MANIFEST)
        );
        let list = seed("manifest", "docker_list.json");
        assert_eq!(
            manifest_media_type(&list[1..], None).as_deref(),
            Ok(crate::registry::DOCKER_MANIFEST_LIST_V2)
        );
    }

    #[test]
    fn trust_seeds_parse() {
        assert_eq!(
            simple_signing(&seed("simple_signing", "payload.json")[1..]),
            Ok(())
        );
        let annotations = seed("simple_signing", "keyless_annotations.txt");
        let (pem, bundle) = text(&annotations[1..]).split_once('\0').unwrap();
        assert!(cosign_keyless_annotations(pem, Some(bundle)).unwrap() > 0);
        let digest = Digest::of(b"the manifest being verified");
        for bundle in [
            "bundle_v03.json",
            "bundle_v03_key.json",
            "bundle_v02_message_signature.json",
        ] {
            let result = sigstore_bundle(&seed("sigstore_bundle", bundle), &digest);
            assert_eq!(result, Ok(()), "{bundle}");
        }
        let leaf = seed("certificate", "fulcio_leaf.der");
        let time = u64::from_be_bytes(leaf[..8].try_into().unwrap());
        assert_eq!(certificate(&leaf[8..], time), Ok(()));
        assert_eq!(
            crate::trust::keyless::check_leaf(
                &crate::trust::x509::parse_certificate(&leaf[8..]).unwrap(),
                time
            ),
            Ok(())
        );
    }

    #[test]
    fn configuration_seeds_load() {
        let dir = tempfile::tempdir().unwrap();
        let env = |vars: &[(&str, PathBuf)]| crate::config::Environment {
            home: Some(dir.path().join("home")),
            vars: vars
                .iter()
                .map(|(name, value)| (name.to_string(), value.display().to_string()))
                .collect::<BTreeMap<_, _>>(),
        };
        for name in ["everything.json", "readme_keyless.json", "readme_site.json"] {
            let path = dir.path().join(name);
            std::fs::write(&path, seed("config_file", name)).unwrap();
            let loaded = crate::Config::load_from(Some(&path), &env(&[]));
            assert!(loaded.is_ok(), "{name}: {:?}", loaded.err());
        }
        std::fs::create_dir(dir.path().join("docker")).unwrap();
        let config = seed("credentials", "docker_config.json");
        std::fs::write(dir.path().join("docker/config.json"), &config[1..]).unwrap();
        let docker = env(&[("DOCKER_CONFIG", dir.path().join("docker"))]);
        let loaded = crate::Config::load_from(None, &docker).unwrap();
        assert!(loaded.credentials("registry.example:5000", "a/b").is_some());
        let auth = seed("credentials", "containers_auth.json");
        std::fs::write(dir.path().join("auth.json"), &auth[1..]).unwrap();
        let containers = env(&[
            ("DOCKER_CONFIG", dir.path().join("empty")),
            ("REGISTRY_AUTH_FILE", dir.path().join("auth.json")),
        ]);
        let loaded = crate::Config::load_from(None, &containers).unwrap();
        let found = loaded.resolve_credentials("quay.io", "team/app").unwrap();
        assert_eq!(found.map(|c| c.username), Some("user".to_owned()));
    }
}
