//! Logs at the most verbose level never show credentials or tokens (ureq's `log` records
//! included, through tracing-subscriber's log bridge). A test binary of its own: it installs
//! the global subscriber.

use concil_test_support as support;

use std::io::Read;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use concil::registry::{Client, TlsSettings};
use support::registry::{Auth, Format, Registry, PASSWORD, USER};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn trace_logs_carry_no_credentials() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .init();

    for auth in [
        Auth::Htpasswd,
        Auth::Token {
            anonymous_pull: false,
            expires_in: 300,
        },
    ] {
        let registry = Registry::builder().auth(auth).redirect_blobs().start();
        let image = registry.push_test_image("test/logged", "v1", Format::DockerV2, "logged");
        let client = Client::new(
            registry.url(),
            "test/logged",
            registry.credentials(),
            &TlsSettings::default(),
            false,
        )
        .unwrap();
        client.manifest("v1").unwrap();
        let mut layer = Vec::new();
        client
            .blob(&concil::digest::Digest::parse(&image.layer_digest).expect("a digest"))
            .unwrap()
            .read_to_end(&mut layer)
            .unwrap();
        assert_eq!(layer, image.layer);
    }

    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    // The capture works: our requests and ureq's own records are there.
    assert!(log.contains("/v2/test/logged/manifests/v1"), "{log}");
    assert!(log.contains("ureq"), "{log}");
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    for secret in [
        PASSWORD,
        basic.as_str(),
        "eyJ", /* the start of any JWT */
    ] {
        assert!(!log.contains(secret), "{secret:?} in the log:\n{log}");
    }
}
