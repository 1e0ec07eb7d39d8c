//! Random trees (names, nesting, file sizes at block boundaries, all-zero and repeated data,
//! symlinks, devices, hard links, modes, ids, mtimes), tarred with the `tar` crate's headers,
//! converted with any thread count and block size, read back with `sqfs2tar`.

use proptest::prelude::*;
use proptest::sample::Index;
use tar::EntryType;

use concil_test_support::e2e::*;

#[derive(Debug, Clone)]
enum Data {
    Zeros,
    Text(u64),
    Noise(u64),
    /// A whole zero block, then noise: sparse and stored blocks in one file.
    ZeroBlockThenNoise(u64),
    /// The same bytes as an earlier file (dedup of blocks and fragments).
    CopyOf(Index),
}

#[derive(Debug, Clone)]
enum Spec {
    Dir,
    /// Size class (see `file_size`) and data.
    File(u8, Data),
    Symlink(String),
    Char(u32, u32),
    Block(u32, u32),
    Fifo,
}

/// A path component: mostly short (so that paths collide and nest), sometimes long (GNU long
/// names) or not ASCII.
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => "[a-c]{1,2}",
        3 => "[a-zA-Z0-9_ =+-]{1,24}",
        1 => "[a-z]{90,200}",
        1 => "[α-ω]{1,6}",
    ]
    .prop_filter("not . or ..", |n| n != "." && n != "..")
}

fn meta() -> impl Strategy<Value = Meta> {
    let id = prop_oneof![Just(0u64), 1..70_000u64, 2_097_152..4_000_000_000u64];
    (0..0o10000u32, id.clone(), id, 0..(1u64 << 34)).prop_map(|(mode, uid, gid, mtime)| Meta {
        mode,
        uid,
        gid,
        mtime,
    })
}

fn spec() -> impl Strategy<Value = Spec> {
    let data = prop_oneof![
        Just(Data::Zeros),
        any::<u64>().prop_map(Data::Text),
        any::<u64>().prop_map(Data::Noise),
        any::<u64>().prop_map(Data::ZeroBlockThenNoise),
        any::<Index>().prop_map(Data::CopyOf),
    ];
    prop_oneof![
        2 => Just(Spec::Dir),
        8 => (0u8..9, data).prop_map(|(size, data)| Spec::File(size, data)),
        2 => "(\\.\\./)?[a-z/]{1,30}|/[a-z]{1,200}".prop_map(Spec::Symlink),
        1 => (0u32..4096, 0u32..(1 << 20)).prop_map(|(a, b)| Spec::Char(a, b)),
        1 => (0u32..4096, 0u32..(1 << 20)).prop_map(|(a, b)| Spec::Block(a, b)),
        1 => Just(Spec::Fifo),
    ]
}

fn file_size(class: u8, block: usize, seed: u64) -> usize {
    match class {
        0 => 0,
        1 => 1 + (seed % 200) as usize,
        2 => block - 1,
        3 => block,
        4 => block + 1,
        5 => 2 * block,
        6 => 3 * block - 7,
        7 => (seed % (3 * block as u64)) as usize,
        _ => block / 2,
    }
}

#[derive(Debug, Clone)]
struct Case {
    block_size: u32,
    threads: usize,
    root: Meta,
    entries: Vec<(Vec<String>, Spec, Meta)>,
    links: Vec<(Vec<String>, Index)>,
    dirs_last: bool,
}

fn path() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(name(), 1..=3)
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop_oneof![Just(4096u32), Just(131_072u32)],
        1usize..=4,
        meta(),
        prop::collection::vec((path(), spec(), meta()), 1..24),
        prop::collection::vec((path(), any::<Index>()), 0..5),
        any::<bool>(),
    )
        .prop_map(
            |(block_size, threads, root, entries, links, dirs_last)| Case {
                block_size,
                threads,
                root,
                entries,
                links,
                dirs_last,
            },
        )
}

/// The tar and the tree it must give. Paths that would collide with an earlier one (the same
/// path, or a path under a non-directory) are left out; every directory gets an entry, before
/// its children or (`dirs_last`) after them.
fn build(case: &Case) -> (Vec<u8>, Tree) {
    let block = case.block_size as usize;
    let mut expected = Tree::default();
    let mut root = case.root.node(Kind::Dir);
    root.mtime = root.mtime.min(u32::MAX as i64);
    expected.insert("", root);
    let mut dirs: Vec<(String, Meta)> = Vec::new();
    let mut others: Vec<(String, Spec, Meta, Vec<u8>)> = Vec::new();
    let mut files: Vec<Vec<u8>> = Vec::new();
    let fits = |expected: &Tree, components: &[String]| {
        let full = components.join("/");
        if expected.nodes.contains_key(&Bytes::from(full.as_str())) {
            return false;
        }
        (1..components.len()).all(|n| {
            let prefix = components[..n].join("/");
            expected
                .nodes
                .get(&Bytes::from(prefix.as_str()))
                .is_none_or(|node| node.kind == Kind::Dir)
        })
    };
    let add_parents =
        |expected: &mut Tree, dirs: &mut Vec<(String, Meta)>, components: &[String], meta: Meta| {
            for n in 1..components.len() {
                let prefix = components[..n].join("/");
                if !expected.nodes.contains_key(&Bytes::from(prefix.as_str())) {
                    expected.insert(&prefix, clamped(meta, Kind::Dir));
                    dirs.push((prefix, meta));
                }
            }
        };
    for (components, spec, meta) in &case.entries {
        if !fits(&expected, components) {
            continue;
        }
        add_parents(&mut expected, &mut dirs, components, *meta);
        let path = components.join("/");
        let (kind, data) = match spec {
            Spec::Dir => {
                expected.insert(&path, clamped(*meta, Kind::Dir));
                dirs.push((path, *meta));
                continue;
            }
            Spec::File(class, data) => {
                let bytes = match data {
                    Data::CopyOf(index) if !files.is_empty() => {
                        files[index.index(files.len())].clone()
                    }
                    Data::CopyOf(_) => pseudo_random(0, file_size(*class, block, 0), true),
                    Data::Zeros => vec![0; file_size(*class, block, 0)],
                    Data::Text(seed) => pseudo_random(*seed, file_size(*class, block, *seed), true),
                    Data::Noise(seed) => {
                        pseudo_random(*seed, file_size(*class, block, *seed), false)
                    }
                    Data::ZeroBlockThenNoise(seed) => {
                        let mut bytes = vec![0; block];
                        bytes.extend(pseudo_random(*seed, file_size(*class, block, *seed), false));
                        bytes
                    }
                };
                files.push(bytes.clone());
                (Kind::file(&bytes), bytes)
            }
            Spec::Symlink(target) => (Kind::Symlink(Bytes::from(target.as_str())), Vec::new()),
            Spec::Char(major, minor) => (
                Kind::CharDevice {
                    major: *major,
                    minor: *minor,
                },
                Vec::new(),
            ),
            Spec::Block(major, minor) => (
                Kind::BlockDevice {
                    major: *major,
                    minor: *minor,
                },
                Vec::new(),
            ),
            Spec::Fifo => (Kind::Fifo, Vec::new()),
        };
        let meta = if matches!(spec, Spec::Symlink(_)) {
            Meta {
                mode: 0o777,
                ..*meta
            }
        } else {
            *meta
        };
        expected.insert(&path, clamped(meta, kind));
        others.push((path, spec.clone(), meta, data));
    }
    let mut links = Vec::new();
    for (components, target) in &case.links {
        if others.is_empty() || !fits(&expected, components) {
            continue;
        }
        add_parents(&mut expected, &mut dirs, components, LINK);
        let path = components.join("/");
        let target = others[target.index(others.len())].0.clone();
        expected.hard_link(&path, &target);
        links.push((path, target));
    }
    expected.count_links();

    let mut writer = TarWriter::new();
    let write_dirs =
        |writer: &mut TarWriter, dirs: &mut Vec<(String, Meta)>, deepest_first: bool| {
            dirs.sort_by_key(|(path, _)| path.matches('/').count());
            if deepest_first {
                dirs.reverse();
            }
            for (path, meta) in dirs.iter() {
                writer.dir(&format!("{path}/"), *meta);
            }
            writer.dir("./", case.root);
        };
    if !case.dirs_last {
        write_dirs(&mut writer, &mut dirs, false);
    }
    for (path, spec, meta, data) in &others {
        let bytes = path.as_bytes();
        match spec {
            Spec::Dir => {}
            Spec::File(..) => {
                writer.entry(EntryType::Regular, bytes, b"", *meta, data);
            }
            Spec::Symlink(target) => {
                writer.entry(EntryType::Symlink, bytes, target.as_bytes(), *meta, b"");
            }
            Spec::Char(major, minor) => {
                writer.device(EntryType::Char, path, *meta, *major, *minor);
            }
            Spec::Block(major, minor) => {
                writer.device(EntryType::Block, path, *meta, *major, *minor);
            }
            Spec::Fifo => {
                writer.device(EntryType::Fifo, path, *meta, 0, 0);
            }
        }
    }
    if case.dirs_last {
        write_dirs(&mut writer, &mut dirs, true);
    }
    for (path, target) in &links {
        writer.hard_link(path, target);
    }
    (writer.finish(), expected)
}

fn clamped(meta: Meta, kind: Kind) -> Node {
    let mut node = meta.node(kind);
    node.mtime = node.mtime.min(u32::MAX as i64);
    node
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_trees_round_trip(case in case()) {
        let (tar, expected) = build(&case);
        let dir = staging_dir();
        let image = dir.path().join("image.sqfs");
        let mut options = options(case.threads);
        options.image.block_size = case.block_size;
        convert_bytes(&tar, &image, &options);
        assert_same_tree(
            &format!("block size {}, {} threads", case.block_size, case.threads),
            &expected,
            &read_back(&image),
        );
    }
}
