//! Registries that want a client certificate (mutual TLS): Debian's docker-registry with
//! `http.tls.clientcas`, the certificate given by `remote_servers.<host>.client_cert` /
//! `client_key` or found in `/etc/docker/certs.d/HOST:PORT/` (`client.cert`, `client.key`,
//! `*.crt`), as Docker and containers lay it out. Without one, or with one from another CA, or
//! with a key that is not the certificate's, the pull fails naming the registry and the file.

use concil_test_support as support;

use std::error::Error;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use support::pull::{expect_failure, run, ConcilHome};
use support::registry::{Format, Registry, TestCa};

type TestResult = Result<(), Box<dyn Error>>;

fn config(registry: &Registry, client: Option<(&Path, &Path)>) -> Value {
    let mut server = json!({"registry": registry.url().as_str()});
    if let Some((cert, key)) = client {
        server["client_cert"] = json!(cert);
        server["client_key"] = json!(key);
    }
    json!({
        "disable_content_trust": true,
        "cafile": registry.ca_file(),
        "remote_servers": {registry.host(): server},
    })
}

fn reference(registry: &Registry, repo: &str) -> String {
    format!("docker://{}/{repo}:v1", registry.host())
}

#[test]
fn the_right_client_certificate_pulls_and_wrong_ones_are_named() -> TestResult {
    let registry = Registry::builder().client_certificates().start();
    registry.push_test_image("mtls/app", "v1", Format::Oci, "mutual");
    let image = reference(&registry, "mtls/app");
    let certs = tempfile::tempdir()?;
    let (cert, key) = registry.ca().issue_client(certs.path(), "alice");
    let (_, other_key) = registry.ca().issue_client(certs.path(), "bob");
    let (expired_cert, expired_key) =
        registry
            .ca()
            .issue_client_for_days(certs.path(), "carol", -1);
    let stranger_ca = TestCa::create(&certs.path().join("stranger"));
    let (stranger_cert, stranger_key) = stranger_ca.issue_client(certs.path(), "mallory");

    let home = ConcilHome::new(config(&registry, Some((&cert, &key))));
    let output = run(&mut home.pull_command(&image, &[]));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    for (case, client) in [
        ("no client certificate", None),
        (
            "a certificate from another CA",
            Some((&stranger_cert, &stranger_key)),
        ),
        (
            "an expired certificate",
            Some((&expired_cert, &expired_key)),
        ),
    ] {
        let home = ConcilHome::new(config(
            &registry,
            client.map(|(c, k): (&PathBuf, &PathBuf)| (c.as_path(), k.as_path())),
        ));
        let failure = expect_failure(&run(&mut home.pull_command(&image, &[])), case);
        assert_eq!(failure.code, Some(7), "{case}: {}", failure.stderr);
        assert!(
            failure.error.contains(&registry.host()),
            "{case}: {}",
            failure.error
        );
        if let Some((cert, _)) = client {
            assert!(
                failure.error.contains(&cert.display().to_string()),
                "{case} names the file: {}",
                failure.error
            );
        }
        home.assert_no_layers();
    }

    // A key that is not the certificate's is refused before any connection, naming the file
    // (ureq itself would panic on it).
    let home = ConcilHome::new(config(&registry, Some((&cert, &other_key))));
    let failure = expect_failure(&run(&mut home.pull_command(&image, &[])), "other key");
    assert_eq!(failure.code, Some(3), "{}", failure.stderr);
    assert!(
        failure
            .error
            .contains("not the key of the client certificate"),
        "{}",
        failure.error
    );
    assert!(
        failure.error.contains(&other_key.display().to_string()),
        "{}",
        failure.error
    );

    // A key file that holds no key is refused before any connection, naming the file.
    let home = ConcilHome::new(config(&registry, Some((&cert, &cert))));
    let failure = expect_failure(&run(&mut home.pull_command(&image, &[])), "no key");
    assert_eq!(failure.code, Some(3), "{}", failure.stderr);
    assert!(
        failure.error.contains("no PEM private key"),
        "{}",
        failure.error
    );
    assert!(
        failure.error.contains(&cert.display().to_string()),
        "{}",
        failure.error
    );

    // Only one of client_cert and client_key is a configuration error.
    let mut half = config(&registry, Some((&cert, &key)));
    half["remote_servers"][registry.host()]
        .as_object_mut()
        .ok_or("entry")?
        .remove("client_key");
    let home = ConcilHome::new(half);
    let failure = expect_failure(&run(&mut home.pull_command(&image, &[])), "half pair");
    assert_eq!(failure.code, Some(3), "{}", failure.stderr);
    assert!(failure.error.contains("client_key"), "{}", failure.error);
    Ok(())
}

/// Removes a directory it was made for when dropped (a `certs.d` entry under /etc).
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn docker_certs_d_gives_the_ca_and_the_client_certificate() -> TestResult {
    let registry = Registry::builder().client_certificates().start();
    registry.push_test_image("mtls/certsd", "v1", Format::Oci, "certs.d");
    let dir = PathBuf::from("/etc/docker/certs.d").join(registry.host());
    std::fs::create_dir_all(&dir)?;
    let _cleanup = RemoveOnDrop(dir.clone());
    let (cert, key) = registry.ca().issue_client(&dir, "issued");
    std::fs::rename(&cert, dir.join("client.cert"))?;
    std::fs::rename(&key, dir.join("client.key"))?;
    std::fs::copy(registry.ca_file(), dir.join("ca.crt"))?;
    for leftover in ["issued.csr", "issued.ext"] {
        let _ = std::fs::remove_file(dir.join(leftover));
    }

    // No cafile, no client_cert: all of it from certs.d.
    let home = ConcilHome::new(json!({
        "disable_content_trust": true,
        "remote_servers": {registry.host(): {"registry": registry.url().as_str()}},
    }));
    let output = run(&mut home.pull_command(&reference(&registry, "mtls/certsd"), &[]));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}
