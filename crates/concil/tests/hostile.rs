//! Regression tests of the adversarial review: what a hostile registry, token service, image
//! author or neighbour in a shared cache must not be able to do. Each test stages the attack
//! against the real registry (hand-made manifests, configs and blobs pushed with the HTTP API),
//! a hostile HTTP server on 127.0.0.1, or a crafted cache, and asserts what concil refuses.

use concil_test_support as support;

use std::error::Error;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde_json::{json, Value};
use support::pull::{config_for, expect_failure, run, sha256_digest, ConcilHome};
use support::registry::{hello_layer, Auth, HttpServer, Registry, Request, Response};

type TestResult = Result<(), Box<dyn Error>>;

const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
const SQUASHFS_LAYER: &str = "application/vnd.docker.image.rootfs.diff.squashfs";
const GZIP_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// A layer to put into a hand-made image: its blob (already pushed), media type and the
/// diff_id its config claims (true or not).
struct Layer<'a> {
    blob: &'a [u8],
    media_type: &'a str,
    diff_id: &'a str,
}

/// Pushes a Docker schema 2 image of `layers` as `repository:tag`; returns the reference.
fn push_image(registry: &Registry, repository: &str, tag: &str, layers: &[Layer]) -> String {
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| l.diff_id).collect::<Vec<_>>()},
    }))
    .expect("config JSON");
    let config_digest = registry.push_blob(repository, &config);
    let descriptors: Vec<Value> = layers
        .iter()
        .map(|layer| {
            let digest = registry.push_blob(repository, layer.blob);
            json!({"mediaType": layer.media_type, "size": layer.blob.len(), "digest": digest})
        })
        .collect();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": DOCKER_CONFIG, "size": config.len(), "digest": config_digest},
        "layers": descriptors,
    }))
    .expect("manifest JSON");
    registry.push_manifest(repository, tag, DOCKER_MANIFEST, &manifest);
    format!("docker://{}/{repository}:{tag}", registry.host())
}

/// Pushes a one-gzip-layer image whose config claims `diff_id` for `blob`.
fn push_gzip_image(registry: &Registry, repository: &str, blob: &[u8], diff_id: &str) -> String {
    push_image(
        registry,
        repository,
        "v1",
        &[Layer {
            blob,
            media_type: GZIP_LAYER,
            diff_id,
        }],
    )
}

/// A real squashfs image (mksquashfs) holding `hello.txt` with `content`.
fn squashfs_blob(content: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("root");
    std::fs::create_dir(&root).expect("root dir");
    std::fs::write(root.join("hello.txt"), content).expect("write hello.txt");
    let image = dir.path().join("layer.sqfs");
    let output = run(Command::new("mksquashfs").arg(&root).arg(&image).args([
        "-noappend",
        "-quiet",
        "-no-progress",
        "-all-root",
    ]));
    assert!(output.status.success(), "mksquashfs: {output:?}");
    std::fs::read(&image).expect("read squashfs")
}

/// `hello.txt` as a squashfs file holds it (rdsquashfs, squashfs-tools-ng).
fn hello_in(squashfs: &Path) -> String {
    let output = run(Command::new("rdsquashfs")
        .args(["-c", "/hello.txt"])
        .arg(squashfs));
    assert!(
        output.status.success(),
        "rdsquashfs -c /hello.txt {}: {output:?}",
        squashfs.display()
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn layer_path(pulled: &Value, index: usize) -> std::path::PathBuf {
    pulled["layers"][index]["path"]
        .as_str()
        .expect("layer path")
        .into()
}

/// A squashfs-typed layer is stored under its blob digest, never under the diff_id its config
/// claims: an image cannot take another image's layer name in the cache.
#[test]
fn squashfs_layer_cannot_take_another_layers_diff_id() -> TestResult {
    let registry = Registry::plain();
    let (victim_blob, victim_diff_id) = hello_layer("the real base layer\n");
    let evil = squashfs_blob("the attacker's layer\n");
    let attacker = push_image(
        &registry,
        "attacker/app",
        "v1",
        &[Layer {
            blob: &evil,
            media_type: SQUASHFS_LAYER,
            diff_id: &victim_diff_id,
        }],
    );
    let victim = push_gzip_image(&registry, "victim/app", &victim_blob, &victim_diff_id);
    let home = ConcilHome::new(config_for(&registry));

    let pulled = home.pull_json(&attacker, &[]);
    let evil_digest = sha256_digest(&evil);
    let layers = home.cache_dir().join("layers");
    assert_eq!(layer_path(&pulled, 0), layers.join(&evil_digest));
    assert_eq!(
        std::fs::read(layers.join(&evil_digest))?,
        evil,
        "stored as it is"
    );
    assert!(
        !layers.join(&victim_diff_id).exists(),
        "the unchecked diff_id names nothing"
    );
    // Its record names the layer by the file it is (not the claimed diff_id): the image is
    // whole in `cache ls`, and `cache verify` finds nothing wrong.
    let cache_command = |args: &[&str]| {
        support::pull::run(
            home.concil()
                .arg("cache")
                .args(args)
                .arg("--config")
                .arg(home.config_path()),
        )
    };
    let listing: Value = serde_json::from_slice(&cache_command(&["ls", "--json"]).stdout)?;
    assert_eq!(
        listing["images"][0]["missing"],
        serde_json::json!([]),
        "{listing}"
    );
    assert_eq!(
        listing["images"][0]["layers"],
        serde_json::json!([evil_digest])
    );
    let verify = cache_command(&["verify"]);
    assert!(verify.status.success(), "{verify:?}");

    let pulled = home.pull_json(&victim, &[]);
    assert_eq!(registry.count_blob_fetches(&sha256_digest(&victim_blob)), 1);
    assert_eq!(layer_path(&pulled, 0), layers.join(&victim_diff_id));
    assert_eq!(hello_in(&layer_path(&pulled, 0)), "the real base layer\n");
    // Pulled again, the attacker's image still gets its own layer.
    let again = home.pull_json(&attacker, &[]);
    assert_eq!(hello_in(&layer_path(&again, 0)), "the attacker's layer\n");
    Ok(())
}

/// A manifest that lists another image's blob with its own diff_id cannot repoint that blob's
/// link in the cache (concil 1.0, sharing it, would serve the attacker's layer for the blob).
#[test]
fn manifest_cannot_repoint_another_images_blob() -> TestResult {
    let registry = Registry::plain();
    let (victim_blob, victim_diff_id) = hello_layer("victim\n");
    let (evil_blob, evil_diff_id) = hello_layer("attacker\n");
    let victim_digest = sha256_digest(&victim_blob);
    let evil = push_gzip_image(&registry, "attacker/base", &evil_blob, &evil_diff_id);
    // The victim's blob digest, with the attacker's diff_id.
    let repoint = push_gzip_image(&registry, "attacker/repoint", &victim_blob, &evil_diff_id);
    let victim = push_gzip_image(&registry, "victim/app", &victim_blob, &victim_diff_id);
    let home = ConcilHome::new(config_for(&registry));
    let layers = home.cache_dir().join("layers");
    home.pull_json(&evil, &[]);

    // Before the victim's blob was ever downloaded: no link appears for it.
    home.pull_json(&repoint, &[]);
    assert!(
        std::fs::symlink_metadata(layers.join(&victim_digest)).is_err(),
        "a link for a blob that was never downloaded"
    );
    let pulled = home.pull_json(&victim, &[]);
    assert_eq!(hello_in(&layer_path(&pulled, 0)), "victim\n");
    assert_eq!(
        std::fs::read_link(layers.join(&victim_digest))?,
        Path::new(&victim_diff_id)
    );

    // After: the link stays where the download put it.
    home.pull_json(&repoint, &[]);
    assert_eq!(
        std::fs::read_link(layers.join(&victim_digest))?,
        Path::new(&victim_diff_id)
    );
    Ok(())
}

/// A layer file name planted as a symlink to a file outside the cache is neither followed nor
/// touched: the pull downloads the layer and replaces the symlink.
#[test]
fn planted_layer_symlink_is_not_followed() -> TestResult {
    let registry = Registry::plain();
    let (blob, diff_id) = hello_layer("layer\n");
    let image = push_gzip_image(&registry, "planted/app", &blob, &diff_id);
    let home = ConcilHome::new(config_for(&registry));
    let outside = tempfile::tempdir()?;
    let target = outside.path().join("precious");
    std::fs::write(&target, "not a layer")?;
    let old = SystemTime::now() - Duration::from_secs(86_400 * 30);
    std::fs::File::options()
        .write(true)
        .open(&target)?
        .set_modified(old)?;
    home.clean(Duration::from_secs(86_400)); // creates the cache directories
    symlink(&target, home.cache_dir().join("layers").join(&diff_id))?;

    let pulled = home.pull_json(&image, &[]);

    assert_eq!(hello_in(&layer_path(&pulled, 0)), "layer\n");
    assert_eq!(std::fs::read_to_string(&target)?, "not a layer");
    assert_eq!(
        std::fs::metadata(&target)?.modified()?,
        old,
        "target touched"
    );
    assert!(std::fs::symlink_metadata(home.cache_dir().join("layers").join(&diff_id))?.is_file());
    Ok(())
}

/// `concil cache clean` in a crafted cache: a symlinked `tmp/` is refused (nothing outside
/// is removed), and files in `tmp/` that concil did not name are left alone.
#[test]
fn clean_never_removes_what_it_did_not_make() -> TestResult {
    let home = ConcilHome::new(json!({}));
    home.clean(Duration::from_secs(1));
    let tmp = home.cache_dir().join("tmp");
    let stranger = tmp.join("notes.txt");
    let lookalike = tmp.join("ingest-12-x");
    std::fs::write(&stranger, "mine")?;
    std::fs::write(&lookalike, "mine too")?;
    let dead_writer = tmp.join("ingest-999999-0");
    std::fs::write(&dead_writer, "partial")?;
    home.clean(Duration::from_secs(1));
    assert!(
        stranger.exists() && lookalike.exists(),
        "foreign files removed"
    );
    assert!(!dead_writer.exists(), "a dead writer's ingest file stays");

    // tmp/ replaced by a symlink to a directory outside the cache.
    let outside = tempfile::tempdir()?;
    let victim = outside.path().join("ingest-1-1");
    std::fs::write(&victim, "outside the cache")?;
    std::fs::remove_dir_all(&tmp)?;
    symlink(outside.path(), &tmp)?;
    let failure = expect_failure(
        &run(home
            .concil()
            .args(["cache", "clean", "--older-than", "0", "--config"])
            .arg(home.config_path())),
        "clean with a symlinked tmp/",
    );
    assert!(failure.error.contains("symlink"), "{}", failure.error);
    assert!(
        failure.error.contains(&*tmp.display().to_string()),
        "{}",
        failure.error
    );
    assert!(victim.exists(), "a file outside the cache was removed");
    Ok(())
}

/// A cache that another user could change is refused, as ssh refuses such a `~/.ssh`: owned
/// by someone else, or writable by others without the sticky bit. Sticky is fine.
#[test]
fn cache_others_could_change_is_refused() -> TestResult {
    let home = ConcilHome::new(json!({}));
    home.clean(Duration::from_secs(1));
    let cache = home.cache_dir();
    let clean = |home: &ConcilHome| {
        run(home
            .concil()
            .args(["cache", "clean", "--config"])
            .arg(home.config_path()))
    };

    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o777))?;
    let failure = expect_failure(&clean(&home), "world-writable cache");
    assert!(failure.error.contains("0777"), "{}", failure.error);
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o1777))?;
    assert!(
        clean(&home).status.success(),
        "a sticky shared cache is fine"
    );

    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o755))?;
    let layers = cache.join("layers");
    // The tests run as root (CI); another user owns the layers directory.
    std::os::unix::fs::chown(&layers, Some(65534), Some(65534))?;
    let failure = expect_failure(&clean(&home), "cache owned by another user");
    assert!(failure.error.contains("uid 65534"), "{}", failure.error);
    assert!(
        failure.error.contains(&*layers.display().to_string()),
        "{}",
        failure.error
    );
    Ok(())
}

/// A token service answering `expires_in` of 2^64-1 (and 0) does not crash the pull.
#[test]
fn extreme_token_lifetimes_do_not_panic() -> TestResult {
    for expires_in in [u64::MAX, 0] {
        let registry = Registry::builder()
            .auth(Auth::Token {
                anonymous_pull: false,
                expires_in,
            })
            .start();
        let (blob, diff_id) = hello_layer("token\n");
        let image = push_gzip_image(&registry, "tokens/app", &blob, &diff_id);
        let home = ConcilHome::new(config_for(&registry));
        let pulled = home.pull_json(&image, &[]);
        assert_eq!(
            hello_in(&layer_path(&pulled, 0)),
            "token\n",
            "expires_in {expires_in}"
        );
    }
    Ok(())
}

/// A hostile registry on 127.0.0.1: answers `GET /v2/` with 200 and every other path from
/// `routes` (path → content type and body), else 404. Registries refuse to store what it
/// serves (sizes past 2^63, …), so it serves the documents itself.
fn hostile_registry(routes: Vec<(String, &'static str, Vec<u8>)>) -> HttpServer {
    HttpServer::start(move |request| {
        let path = request.target.split('?').next().unwrap_or_default();
        let found = routes.iter().find(|(route, _, _)| route == path);
        match (path, found) {
            ("/v2/", _) => Response {
                status: 200,
                content_type: "application/json",
                body: b"{}".to_vec(),
                headers: Vec::new(),
            },
            (_, Some((_, content_type, body))) => Response {
                status: 200,
                content_type,
                body: body.clone(),
                headers: Vec::new(),
            },
            (_, None) => Response {
                status: 404,
                content_type: "application/json",
                body: b"{}".to_vec(),
                headers: Vec::new(),
            },
        }
    })
}

fn home_for(server: &HttpServer) -> (ConcilHome, String) {
    let host = format!("127.0.0.1:{}", server.port);
    let home = ConcilHome::new(json!({
        "disable_content_trust": true,
        "remote_servers": {host.clone(): {"registry": format!("http://{host}")}},
    }));
    (home, host)
}

/// Sizes at the edges of their types (2^64-1, 0, negative) are refused with an error naming
/// what, never a panic; a negative one names the field.
#[test]
fn extreme_sizes_are_refused_cleanly() -> TestResult {
    let (blob, diff_id) = hello_layer("sizes\n");
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }))?;
    let (config_digest, blob_digest) = (sha256_digest(&config), sha256_digest(&blob));
    let cases: [(&str, Value, Value, &str); 4] = [
        (
            "config-max",
            json!(u64::MAX),
            json!(blob.len()),
            "more than",
        ),
        (
            "layer-max",
            json!(config.len()),
            json!(u64::MAX),
            // The body ended cleanly: another blob than the manifest declares (exit 9).
            "the manifest declares 18446744073709551615",
        ),
        (
            "layer-zero",
            json!(config.len()),
            json!(0),
            "more than the 0 bytes",
        ),
        ("negative", json!(config.len()), json!(-1), "layers[0].size"),
    ];
    let mut routes = vec![
        (
            format!("/v2/sizes/app/blobs/{config_digest}"),
            "application/octet-stream",
            config.clone(),
        ),
        (
            format!("/v2/sizes/app/blobs/{blob_digest}"),
            "application/octet-stream",
            blob.clone(),
        ),
    ];
    for (tag, config_size, layer_size, _) in &cases {
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
            "config": {"mediaType": DOCKER_CONFIG, "size": config_size, "digest": config_digest},
            "layers": [{"mediaType": GZIP_LAYER, "size": layer_size, "digest": blob_digest}],
        }))?;
        routes.push((
            format!("/v2/sizes/app/manifests/{tag}"),
            DOCKER_MANIFEST,
            manifest,
        ));
    }
    let server = hostile_registry(routes);
    let (home, host) = home_for(&server);
    for (tag, _, _, expected) in cases {
        let failure = home.pull_failure(&format!("docker://{host}/sizes/app:{tag}"), &[]);
        assert_ne!(
            failure.code,
            Some(101),
            "{tag}: panicked: {}",
            failure.stderr
        );
        assert!(failure.error.contains(expected), "{tag}: {}", failure.error);
        home.assert_no_layers();
        home.assert_no_working_files();
    }
    Ok(())
}

/// An HTTPS registry whose token realm is plain HTTP never gets the user's credentials sent
/// there; anonymous token requests (nothing to leak) still work.
#[test]
fn credentials_never_go_to_a_plain_http_realm() -> TestResult {
    let registry = Registry::builder()
        .tls()
        .auth(Auth::Token {
            anonymous_pull: true,
            expires_in: 300,
        })
        .start();
    let (blob, diff_id) = hello_layer("realm\n");
    let image = push_gzip_image(&registry, "realm/app", &blob, &diff_id);
    let requests_before = registry.token_requests();
    let home = ConcilHome::new(config_for(&registry));
    let failure = home.pull_failure(&image, &[]);
    assert!(failure.error.contains("plain-HTTP"), "{}", failure.error);
    assert_eq!(
        registry.token_requests(),
        requests_before,
        "the realm was asked"
    );

    let mut anonymous = config_for(&registry);
    anonymous
        .as_object_mut()
        .ok_or("config object")?
        .remove("auths");
    home.rewrite_config(anonymous);
    let pulled = home.pull_json(&image, &[]);
    assert_eq!(hello_in(&layer_path(&pulled, 0)), "realm\n");
    Ok(())
}

/// A registry's error codes and messages reach the terminal with their control characters
/// escaped: they cannot clear the screen, set the title or forge a second `error:` line.
#[test]
fn registry_text_is_escaped_on_the_terminal() -> TestResult {
    let hostile = "\u{1b}]0;pwned\u{7}\u{1b}[2J\nerror: forged line\r\u{202e}";
    let seen: Arc<Mutex<Vec<Request>>> = Arc::default();
    let log = Arc::clone(&seen);
    let server = HttpServer::start(move |request| {
        log.lock().expect("request log").push(request.clone());
        let body = if request.target == "/v2/" {
            b"{}".to_vec()
        } else {
            serde_json::to_vec(&json!({"errors": [{"code": format!("MANIFEST_UNKNOWN{hostile}"), "message": hostile}]}))
                .expect("error JSON")
        };
        Response {
            status: if request.target == "/v2/" { 200 } else { 404 },
            content_type: "application/json",
            body,
            headers: Vec::new(),
        }
    });
    let (home, host) = home_for(&server);
    let output = run(&mut home.pull_command(&format!("docker://{host}/evil/app:v1"), &[]));
    let failure = expect_failure(&output, "pull from a registry with escape sequences");
    // One error line (and the warning that content trust is off); nothing forged.
    for line in failure.stderr.lines() {
        assert!(
            line.starts_with("error: not found") || line.starts_with("warning: "),
            "{:?}",
            failure.stderr
        );
    }
    assert!(!failure.stderr.contains('\u{1b}'), "{:?}", failure.stderr);
    assert!(!failure.stderr.contains('\u{202e}'), "{:?}", failure.stderr);
    assert!(
        failure.error.contains("\\u{1b}]0;pwned"),
        "escaped, still readable: {}",
        failure.error
    );
    assert!(
        seen.lock().map_err(|_| "log")?.len() >= 2,
        "the server was asked"
    );

    // The debug log (which shows the registry's answers) escapes them too.
    let output = run(&mut home.pull_command(&format!("docker://{host}/evil/app:v1"), &["-vv"]));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("pwned"),
        "the log shows the answer: {stderr}"
    );
    assert!(!stderr.contains('\u{1b}'), "{stderr:?}");
    assert!(
        !stderr.lines().any(|line| line.starts_with("error: forged")),
        "{stderr:?}"
    );
    Ok(())
}

/// A configuration error with a multi-line cause (a regex parser's report) is one line.
#[test]
fn a_multi_line_cause_is_one_error_line() -> TestResult {
    let home = ConcilHome::new(json!({
        "cosign_trusted_root": "/nonexistent/trusted_root.json",
        "cosign_identities": {"127.0.0.1/app": {"subject_regexp": "a(b", "issuer": "x"}},
    }));
    let output = run(&mut home.pull_command("docker://127.0.0.1:1/app:v1", &[]));
    let failure = expect_failure(&output, "pull with a bad subject_regexp");
    assert_eq!(failure.stderr.lines().count(), 1, "{:?}", failure.stderr);
    assert!(
        failure.error.contains("subject_regexp"),
        "{}",
        failure.error
    );
    Ok(())
}

/// `$CONCIL_CONFIG` naming a missing file is an error (as `--config` is); a `cafile` that never
/// ends (`/dev/zero`) is refused after a bounded read.
#[test]
fn named_files_must_exist_and_are_read_bounded() -> TestResult {
    let home = ConcilHome::new(json!({}));
    let missing = home.config_path().with_file_name("missing.json");
    let output = run(home
        .concil()
        .env("CONCIL_CONFIG", &missing)
        .args(["cache", "clean"]));
    let failure = expect_failure(&output, "CONCIL_CONFIG naming a missing file");
    assert!(
        failure.error.contains(&*missing.display().to_string()),
        "{}",
        failure.error
    );

    home.rewrite_config(json!({"cafile": "/dev/zero", "disable_content_trust": true}));
    let output = run(&mut home.pull_command("docker://127.0.0.1:1/app:v1", &[]));
    let failure = expect_failure(&output, "cafile /dev/zero");
    assert!(failure.error.contains("/dev/zero"), "{}", failure.error);
    assert!(failure.error.contains("larger than"), "{}", failure.error);
    Ok(())
}

/// Scripts branch on the exit status: each kind of failure has its own (README's table).
#[test]
fn each_kind_of_failure_has_its_exit_status() -> TestResult {
    use concil::exit_status::{
        CACHE_IO, CONFIG_INVALID, CONTENT_INVALID, NETWORK, NOT_FOUND, RATE_LIMITED, UNAUTHORIZED,
        USAGE,
    };
    let answering = |status: u16| {
        HttpServer::start(move |request| Response {
            status: if request.target == "/v2/" {
                200
            } else {
                status
            },
            content_type: "application/json",
            body: b"{}".to_vec(),
            headers: Vec::new(),
        })
    };
    let status_of = |home: &ConcilHome, image: &str| home.pull_failure(image, &[]).code;

    let missing = answering(404);
    let (home, host) = home_for(&missing);
    assert_eq!(
        status_of(&home, &format!("docker://{host}/a/b:v1")),
        Some(i32::from(NOT_FOUND))
    );
    let refusing = answering(401);
    let (home, host) = home_for(&refusing);
    assert_eq!(
        status_of(&home, &format!("docker://{host}/a/b:v1")),
        Some(i32::from(UNAUTHORIZED))
    );
    let limiting = answering(429);
    let (home, host) = home_for(&limiting);
    assert_eq!(
        status_of(&home, &format!("docker://{host}/a/b:v1")),
        Some(i32::from(RATE_LIMITED))
    );
    let garbling = answering(200);
    let (home, host) = home_for(&garbling);
    assert_eq!(
        status_of(&home, &format!("docker://{host}/a/b:v1")),
        Some(i32::from(CONTENT_INVALID))
    );

    // Nothing listens on a port just freed.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let home = ConcilHome::new(json!({
        "disable_content_trust": true,
        "remote_servers": {format!("127.0.0.1:{closed}"): {"registry": format!("http://127.0.0.1:{closed}")}},
    }));
    assert_eq!(
        status_of(&home, &format!("docker://127.0.0.1:{closed}/a/b:v1")),
        Some(i32::from(NETWORK))
    );
    assert_eq!(
        status_of(&home, "docker://127.0.0.1/UPPER:v1"),
        Some(i32::from(USAGE))
    );

    home.rewrite_config(json!({"cache_timeout": "soon"}));
    assert_eq!(
        status_of(&home, "docker://127.0.0.1/a/b:v1"),
        Some(i32::from(CONFIG_INVALID))
    );

    home.rewrite_config(json!({"disable_content_trust": true}));
    std::fs::create_dir_all(home.cache_dir())?;
    std::fs::set_permissions(home.cache_dir(), std::fs::Permissions::from_mode(0o777))?;
    assert_eq!(
        status_of(&home, "docker://127.0.0.1/a/b:v1"),
        Some(i32::from(CACHE_IO))
    );
    Ok(())
}

/// A gzip-compressed tar, made by GNU tar and gzip, of the directory `setup` fills.
fn tar_gz_of(setup: impl FnOnce(&Path)) -> (Vec<u8>, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("root");
    std::fs::create_dir(&root).expect("root");
    setup(&root);
    let tar = run(Command::new("tar")
        .args(["--sort=name", "--owner=0", "--group=0", "-cf", "-", "-C"])
        .arg(&root)
        .arg("."));
    assert!(tar.status.success(), "tar: {tar:?}");
    let tar_path = dir.path().join("layer.tar");
    std::fs::write(&tar_path, &tar.stdout).expect("write tar");
    let gzip = run(Command::new("gzip").args(["-n", "-c"]).arg(&tar_path));
    assert!(gzip.status.success(), "gzip");
    (gzip.stdout, sha256_digest(&tar.stdout))
}

/// What a hostile layer may cost is bounded by configuration: a small gzip blob that
/// inflates past `layer_max_size`, a tar with more entries than `layer_max_entries`, each
/// refused naming the layer and the limit, with nothing left in the cache; within the limits
/// both pull.
#[test]
fn layer_limits_bound_hostile_layers() -> TestResult {
    let registry = Registry::plain();
    let (bomb, bomb_diff_id) = tar_gz_of(|root| {
        let zeros = std::fs::File::create(root.join("zeros")).expect("zeros");
        zeros.set_len(64 << 20).expect("64 MiB of zeros");
    });
    assert!(bomb.len() < 1 << 20, "{} bytes of gzip", bomb.len());
    let (many, many_diff_id) = tar_gz_of(|root| {
        for i in 0..300 {
            std::fs::write(root.join(format!("f{i}")), "").expect("file");
        }
    });
    let bomb_image = push_gzip_image(&registry, "limits/bomb", &bomb, &bomb_diff_id);
    let many_image = push_gzip_image(&registry, "limits/many", &many, &many_diff_id);
    let mut config = config_for(&registry);
    config["layer_max_size"] = json!("16M");
    config["layer_max_entries"] = json!(100);
    let home = ConcilHome::new(config.clone());

    let failure = home.pull_failure(&bomb_image, &[]);
    assert!(
        failure.error.contains("layer_max_size = 16777216"),
        "{}",
        failure.error
    );
    assert!(
        failure.error.contains(&sha256_digest(&bomb)),
        "{}",
        failure.error
    );
    assert_eq!(
        failure.code,
        Some(i32::from(concil::exit_status::CONTENT_INVALID))
    );
    let failure = home.pull_failure(&many_image, &[]);
    assert!(
        failure.error.contains("layer_max_entries = 100"),
        "{}",
        failure.error
    );
    home.assert_no_layers();
    home.assert_no_working_files();

    config["layer_max_size"] = json!("65M");
    config["layer_max_entries"] = json!(302);
    home.rewrite_config(config);
    home.pull_json(&bomb_image, &[]);
    home.pull_json(&many_image, &[]);
    Ok(())
}

/// A tar listed as a squashfs-typed layer would be stored under its digest, which is also the
/// name of the squashfs file of the same bytes as an uncompressed tar layer: refused, so the
/// image that really has that tar layer still gets its conversion. A squashfs-typed layer is
/// bounded by `layer_max_size` too, before anything is fetched.
#[test]
fn a_tar_cannot_pose_as_a_squashfs_layer() -> TestResult {
    const TAR_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
    let registry = Registry::plain();
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("hello.txt"), "uncompressed\n")?;
    let tar = run(Command::new("tar")
        .args(["--owner=0", "--group=0", "-cf", "-", "-C"])
        .arg(dir.path())
        .arg("hello.txt"));
    assert!(tar.status.success(), "tar");
    let tar = tar.stdout;
    let diff_id = sha256_digest(&tar);
    let posing = push_image(
        &registry,
        "attacker/posing",
        "v1",
        &[Layer {
            blob: &tar,
            media_type: SQUASHFS_LAYER,
            diff_id: &diff_id,
        }],
    );
    let victim = push_image(
        &registry,
        "victim/plain",
        "v1",
        &[Layer {
            blob: &tar,
            media_type: TAR_LAYER,
            diff_id: &diff_id,
        }],
    );
    let mut config = config_for(&registry);
    let home = ConcilHome::new(config.clone());

    let failure = home.pull_failure(&posing, &[]);
    assert!(
        failure.error.contains("typed as squashfs but is a tar"),
        "{}",
        failure.error
    );
    assert_eq!(
        failure.code,
        Some(i32::from(concil::exit_status::CONTENT_INVALID))
    );
    home.assert_no_layers();
    let pulled = home.pull_json(&victim, &[]);
    assert_eq!(hello_in(&layer_path(&pulled, 0)), "uncompressed\n");

    let evil = squashfs_blob("big\n");
    let big = push_image(
        &registry,
        "attacker/big",
        "v1",
        &[Layer {
            blob: &evil,
            media_type: SQUASHFS_LAYER,
            diff_id: &sha256_digest(&evil),
        }],
    );
    config["layer_max_size"] = json!(100);
    home.rewrite_config(config);
    let failure = home.pull_failure(&big, &[]);
    assert!(
        failure.error.contains("more than layer_max_size = 100"),
        "{}",
        failure.error
    );
    assert_eq!(registry.count_blob_fetches(&sha256_digest(&evil)), 0);
    Ok(())
}

/// Outside text in a warning (the platform an image's config claims) is escaped in the log too.
#[test]
fn registry_text_in_warnings_is_escaped() -> TestResult {
    let (blob, diff_id) = hello_layer("warned\n");
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux\r\nerror: forged\u{1b}[2J\u{202e}",
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }))?;
    let (config_digest, blob_digest) = (sha256_digest(&config), sha256_digest(&blob));
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": DOCKER_CONFIG, "size": config.len(), "digest": config_digest},
        "layers": [{"mediaType": GZIP_LAYER, "size": blob.len(), "digest": blob_digest}],
    }))?;
    let server = hostile_registry(vec![
        (
            format!("/v2/warn/app/blobs/{config_digest}"),
            "application/octet-stream",
            config,
        ),
        (
            format!("/v2/warn/app/blobs/{blob_digest}"),
            "application/octet-stream",
            blob,
        ),
        (
            "/v2/warn/app/manifests/v1".to_owned(),
            DOCKER_MANIFEST,
            manifest,
        ),
    ]);
    let (home, host) = home_for(&server);
    let output = run(&mut home.pull_command(&format!("docker://{host}/warn/app:v1"), &[]));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("forged"), "the warning is shown: {stderr}");
    assert!(
        !stderr.lines().any(|line| line.starts_with("error")),
        "{stderr:?}"
    );
    assert!(
        !stderr.contains('\u{1b}') && !stderr.contains('\u{202e}'),
        "{stderr:?}"
    );
    Ok(())
}

/// An entry another user planted (possible in a sticky directory shared on purpose) is not
/// taken for ours: the layer is downloaded and converted again.
#[test]
fn another_users_entry_is_not_used() -> TestResult {
    let registry = Registry::plain();
    let (blob, diff_id) = hello_layer("mine\n");
    let image = push_gzip_image(&registry, "shared/app", &blob, &diff_id);
    let home = ConcilHome::new(config_for(&registry));
    home.clean(Duration::from_secs(86_400)); // creates the cache directories
    let planted = home.cache_dir().join("layers").join(&diff_id);
    std::fs::write(&planted, squashfs_blob("planted\n"))?;
    // The tests run as root (CI); another user owns the planted file.
    std::os::unix::fs::chown(&planted, Some(65534), Some(65534))?;

    let pulled = home.pull_json(&image, &[]);

    assert_eq!(hello_in(&layer_path(&pulled, 0)), "mine\n");
    assert_eq!(registry.count_blob_fetches(&sha256_digest(&blob)), 1);
    Ok(())
}
