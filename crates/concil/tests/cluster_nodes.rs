//! Many nodes, one cache: cluster nodes, each a process in network and mount namespaces of its
//! own (`support::nodes`, needs root, `socat` and `ip`), share one cache directory and pull one
//! multi-layer image through one pull-through mirror (Debian's `docker-registry` in proxy mode)
//! in front of the origin registry. The per-blob lock (`locks/<blob>`, flock) makes one node
//! download and convert each layer while the others wait and find it in the cache; a node
//! killed mid-pull releases its locks with its death, and the others take over.

use concil_test_support as support;

use std::collections::BTreeSet;
use std::error::Error;
use std::ffi::OsStr;
use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::images::{Format, Images, PushedImage};
use support::nodes::{blocked_flock_waiters, Barrier, Bridge, Cluster, Node};
use support::proxy::{BlobFault, Fault, Proxy};
use support::pull::{concil_binary, config_for, CacheEntry, ConcilHome, Pulled};
use support::registry::Registry;

use concil::store::DEFAULT_PARALLEL_LAYERS;

type TestResult = Result<(), Box<dyn Error>>;

/// How many nodes pull at once.
const NODES: usize = 6;
/// Longest a node's pull may take (a loaded 2-core box; the whole test stays under a minute).
const PULL_LIMIT: Duration = Duration::from_secs(45);
/// Longest the test waits for a state it brought about (a node mid-pull, nodes blocked).
const WAIT_LIMIT: Duration = Duration::from_secs(30);

fn port(registry: &Registry) -> u16 {
    registry.url().port().expect("a registry URL has its port")
}

fn base(registry: &Registry) -> String {
    registry.url().as_str().to_owned()
}

/// `config_for(origin)` with `mirror` in front of it (the cache directory is set per home).
fn config_with_mirror(origin: &Registry, mirror: &Registry) -> Value {
    let mut config = config_for(origin);
    config["remote_servers"] = json!({origin.host(): {
        "registry": origin.url().as_str(),
        "mirrors": [base(mirror)],
    }});
    config
}

/// Starts node `name` running `concil pull --json <image>` with a configuration of its own
/// (in its node directory) whose `cache_dir` is the shared cache of `home`.
fn start_pull_node(
    cluster: &Cluster,
    name: &str,
    home: &ConcilHome,
    bridges: &[(u16, &Bridge)],
    barrier: &Barrier,
    image: &str,
) -> Node {
    let config_path = cluster.node_dir(name).join("config.json");
    std::fs::copy(home.config_path(), &config_path).expect("the node's configuration");
    let concil = concil_binary();
    let args: [&OsStr; 5] = [
        "pull".as_ref(),
        "--json".as_ref(),
        "--config".as_ref(),
        config_path.as_os_str(),
        image.as_ref(),
    ];
    cluster.start_node(name, bridges, barrier, &concil, &args)
}

/// The `concil pull --json` output of a node that succeeded.
fn pull_output(name: &str, output: &Output) -> Value {
    assert!(
        output.status.success(),
        "node {name} failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "node {name} printed no JSON ({error}):\n{}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

/// The `source` of each layer in `concil pull --json` output.
fn sources(output: &Value) -> Vec<String> {
    output["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|layer| layer["source"].as_str().expect("source").to_owned())
        .collect()
}

/// Checks the outputs of nodes that pulled `image` into `home`'s cache: each found the image
/// (same digests, the same squashfs files under the shared cache directory), and per layer
/// exactly one node got it from `mirror` while all others found it in the cache.
fn assert_pulled_once_each(
    outputs: &[(String, Value)],
    image: &PushedImage,
    home: &ConcilHome,
    mirror: &str,
) {
    let expected = Pulled::expected(image, "linux/amd64", home);
    for (name, output) in outputs {
        assert_eq!(
            Pulled::from_json(output, &image.reference),
            expected,
            "node {name} pulled the image into the shared cache"
        );
    }
    for (index, layer) in image.layers.iter().enumerate() {
        let by_node: Vec<(&str, String)> = outputs
            .iter()
            .map(|(name, output)| (name.as_str(), sources(output)[index].clone()))
            .collect();
        let downloaders: Vec<&(&str, String)> = by_node
            .iter()
            .filter(|(_, source)| source != "cache")
            .collect();
        assert_eq!(
            downloaders.len(),
            1,
            "layer {} downloaded and converted by exactly one node: {by_node:?}",
            layer.digest
        );
        assert_eq!(
            downloaders[0].1, mirror,
            "layer {} came through the mirror: {by_node:?}",
            layer.digest
        );
    }
}

/// The working files in the cache's `tmp/`.
fn working_files(home: &ConcilHome) -> BTreeSet<String> {
    home.listing("tmp").into_keys().collect()
}

/// Waits until `done` holds, failing with `what` after [`WAIT_LIMIT`].
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT_LIMIT;
    while !done() {
        assert!(Instant::now() < deadline, "{what} within {WAIT_LIMIT:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// How often the origin serves a blob that one client fetches once through `mirror` while the
/// mirror does not hold it yet: a blob of its own, pushed to `repo` and fetched here.
fn origin_fetches_per_mirror_miss(origin: &Registry, mirror: &Registry, repo: &str) -> usize {
    let bytes: Vec<u8> = (0..64 * 1024u32).map(|i| (i % 253) as u8).collect();
    let digest = origin.push_blob(repo, &bytes);
    let url = mirror
        .url()
        .join(&format!("v2/{repo}/blobs/{digest}"))
        .expect("URL");
    let agent = support::registry::test_agent(None);
    let mut response = agent
        .get(url.as_str())
        .call()
        .expect("GET through the mirror");
    let body = response.body_mut().read_to_vec().expect("the blob");
    assert_eq!(body, bytes, "the mirror served the blob");
    wait_for_mirror_copy(mirror, &digest);
    origin.count_blob_fetches(&digest)
}

/// Waits until the pull-through cache stored its copy of `digest` (it fetches it from the
/// origin in the background too).
fn wait_for_mirror_copy(mirror: &Registry, digest: &str) {
    wait_until(&format!("the mirror stored {digest}"), || {
        mirror.blob_data_path(digest).is_file()
    });
}

/// Six nodes in namespaces of their own pull one three-layer image at the same moment through
/// one mirror into one cache: one node converts each layer, the others wait for it and find it
/// in the cache; the mirror is asked for each blob once, and the origin serves each blob only
/// what the mirror's one miss costs; the cache holds the image and nothing else; each node saw
/// only its own scratch directory.
#[test]
fn nodes_pulling_one_image_at_once_convert_each_layer_once() -> TestResult {
    let origin = Registry::plain();
    let images = Images::new(&origin)?;
    let image = images.push_layered("cluster/layered", "v1", Format::Oci)?;
    assert!(image.layers.len() >= 3, "a multi-layer image");
    let mirror = Registry::builder().pull_through(origin.url()).start();
    let home = ConcilHome::new(config_with_mirror(&origin, &mirror));

    let cluster = Cluster::new();
    let to_origin = cluster.bridge("origin", port(&origin));
    let to_mirror = cluster.bridge("mirror", port(&mirror));
    let bridges = [(port(&origin), &to_origin), (port(&mirror), &to_mirror)];
    let barrier = cluster.barrier("all");
    let mut nodes: Vec<Node> = (0..NODES)
        .map(|i| {
            start_pull_node(
                &cluster,
                &format!("node{i}"),
                &home,
                &bridges,
                &barrier,
                &image.reference,
            )
        })
        .collect();
    for node in &mut nodes {
        node.wait_ready();
    }
    barrier.release();
    let outputs: Vec<(String, Value)> = nodes
        .iter_mut()
        .map(|node| {
            let output = node.finish(PULL_LIMIT);
            (node.name().to_owned(), pull_output(node.name(), &output))
        })
        .collect();

    assert_pulled_once_each(&outputs, &image, &home, &base(&mirror));
    home.assert_holds_image(&image);

    assert_apart(&cluster, &nodes);

    // The mirror was asked for each blob once; the origin served each as often as one miss of
    // the mirror costs (distribution 2.8's proxy fetches a missing blob twice: once for the
    // client, once for its own storage).
    let mut blobs: Vec<&str> = image.layers.iter().map(|l| l.digest.as_str()).collect();
    blobs.push(&image.config_digest);
    for blob in &blobs {
        wait_for_mirror_copy(&mirror, blob);
    }
    let per_miss = origin_fetches_per_mirror_miss(&origin, &mirror, &image.repo);
    assert!(per_miss >= 1, "the mirror fetched from the origin");
    for blob in &blobs {
        assert_eq!(
            mirror.count_blob_fetches(blob),
            1,
            "the mirror served {blob} once: {:#?}",
            mirror.log_lines()
        );
        assert_eq!(
            origin.count_blob_fetches(blob),
            per_miss,
            "the origin served {blob} for one miss of the mirror"
        );
    }
    Ok(())
}

/// A node on a slow link holds every layer's lock, halfway through each download, while five
/// others wait for those locks; it is killed (SIGKILL). The kernel releases its locks, one of
/// the others downloads each layer, and all five get the right layers; the dead node's working
/// files stay until `concil cache clean`, which finds their locks free.
#[test]
fn a_node_killed_mid_pull_leaves_the_others_the_layers() -> TestResult {
    let origin = Registry::plain();
    let images = Images::new(&origin)?;
    let image = images.push_layered("cluster/killed", "v1", Format::Docker)?;
    assert!(image.layers.len() >= 3, "a multi-layer image");
    let mirror = Registry::builder().pull_through(origin.url()).start();
    let home = ConcilHome::new(config_with_mirror(&origin, &mirror));

    // The victim's mirror is the same mirror behind a proxy that stalls each layer's body
    // halfway (the config passes: the victim gets as far as its layers).
    let slow = Proxy::start("127.0.0.1:0", &mirror.host())?;
    slow.set_faults(
        image
            .layers
            .iter()
            .map(|layer| BlobFault {
                fault: Fault::Stall {
                    after: layer.size / 2,
                    pause: Duration::from_secs(120),
                },
                digest: Some(layer.digest.clone()),
                times: None,
            })
            .collect(),
    );
    let cluster = Cluster::new();
    let to_origin = cluster.bridge("origin", port(&origin));
    let to_mirror = cluster.bridge("mirror", port(&mirror));
    let to_slow_mirror = cluster.bridge("slow-mirror", slow.addr().port());

    let first = cluster.barrier("victim");
    let mut victim = start_pull_node(
        &cluster,
        "victim",
        &home,
        &[
            (port(&origin), &to_origin),
            (port(&mirror), &to_slow_mirror),
        ],
        &first,
        &image.reference,
    );
    victim.wait_ready();
    first.release();
    let victim_pid = victim.program_pid();
    let victim_prefix = format!("ingest-{victim_pid}-");
    let layers = image.layers.len();
    assert!(
        layers <= DEFAULT_PARALLEL_LAYERS,
        "the victim holds every layer's lock at once"
    );
    wait_until("the victim is halfway through every layer", || {
        let halfway = slow
            .blob_requests()
            .iter()
            .filter(|request| {
                image.layers.iter().any(|layer| {
                    request.path.ends_with(&layer.digest) && request.body_bytes == layer.size / 2
                })
            })
            .count();
        let writing = working_files(&home)
            .iter()
            .filter(|name| name.starts_with(&victim_prefix) && !name.ends_with(".link"))
            .count();
        halfway == layers && writing == layers
    });
    assert_eq!(
        home.listing("layers"),
        Default::default(),
        "nothing committed yet"
    );

    let second = cluster.barrier("others");
    let bridges = [(port(&origin), &to_origin), (port(&mirror), &to_mirror)];
    let mut others: Vec<Node> = (0..NODES - 1)
        .map(|i| {
            start_pull_node(
                &cluster,
                &format!("node{i}"),
                &home,
                &bridges,
                &second,
                &image.reference,
            )
        })
        .collect();
    for node in &mut others {
        node.wait_ready();
    }
    second.release();
    let pids: Vec<u32> = others.iter_mut().map(Node::program_pid).collect();
    wait_until(
        "every other node waits for the victim's layer locks",
        || pids.iter().all(|pid| blocked_flock_waiters(*pid) == layers),
    );

    victim.kill_program();
    let killed = victim.finish(PULL_LIMIT);
    assert_eq!(
        killed.status.code(),
        Some(128 + 9),
        "the victim died of SIGKILL: {}",
        String::from_utf8_lossy(&killed.stderr)
    );
    assert!(killed.stdout.is_empty(), "the victim printed no result");

    let outputs: Vec<(String, Value)> = others
        .iter_mut()
        .map(|node| {
            let output = node.finish(PULL_LIMIT);
            (node.name().to_owned(), pull_output(node.name(), &output))
        })
        .collect();
    assert_pulled_once_each(&outputs, &image, &home, &base(&mirror));

    // The dead node's working files (one per layer) are all that is left in tmp/, and clean
    // removes them: their flocks died with it.
    let left = working_files(&home);
    assert_eq!(left.len(), layers, "{left:?}");
    assert!(
        left.iter().all(|name| name.starts_with(&victim_prefix)),
        "only the victim's working files are left: {left:?}"
    );
    for name in &left {
        assert_eq!(
            home.listing("tmp").get(name),
            Some(&CacheEntry::File),
            "{name}"
        );
    }
    let report = home.clean(Duration::from_secs(3600));
    assert!(
        report.contains(&format!("removed {layers} files")),
        "clean removed the dead node's working files: {report}"
    );
    home.assert_holds_image(&image);

    others.push(victim);
    assert_apart(&cluster, &others);
    Ok(())
}

/// The nodes were apart: network and mount namespaces of their own (not the test's), and
/// each saw only its own file in its scratch directory, which stays empty outside.
fn assert_apart(cluster: &Cluster, nodes: &[Node]) {
    let ours: Vec<String> = ["/proc/self/ns/net", "/proc/self/ns/mnt"]
        .iter()
        .map(|path| {
            std::fs::read_link(path)
                .expect("the test's namespaces")
                .display()
                .to_string()
        })
        .collect();
    let mut seen = BTreeSet::new();
    for node in nodes {
        let namespaces = node.namespaces();
        assert_eq!(namespaces.len(), ours.len(), "{namespaces:?}");
        for (theirs, ours) in namespaces.iter().zip(&ours) {
            assert_ne!(theirs, ours, "node {} in the test's namespace", node.name());
            assert!(seen.insert(theirs.clone()), "{theirs} shared by two nodes");
        }
        assert_eq!(
            node.scratch_listing(),
            [node.name()],
            "node {} saw only its own scratch file",
            node.name()
        );
    }
    let outside = std::fs::read_dir(cluster.scratch())
        .expect("the scratch directory")
        .count();
    assert_eq!(
        outside, 0,
        "the nodes' scratch files stayed in their own mounts"
    );
}
