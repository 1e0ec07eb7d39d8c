//! Arbitrary bytes as Notary's TUF metadata (the first byte picks the role: root,
//! timestamp, snapshot, targets), parsed as the Notary client parses a file it fetched or
//! cached (`metadata::parse`), then read as it reads one before and around the signature
//! checks: the expiry time, every key listed (under its own ID, so that the key's parsing
//! is reached), every signature tried with every such key, hashes and lengths against a
//! file, delegations' paths.
#![no_main]

use std::collections::BTreeMap;

use concil::fuzzing;
use concil::trust::notary::keys::{key_id, parse_key, TufKey};
use concil::trust::notary::metadata::{
    self, FileMeta, Key, Role, Root, SignedFile, Snapshot, Targets, Timestamp,
};
use libfuzzer_sys::fuzz_target;

fn keys(listed: &BTreeMap<String, Key>) -> Vec<TufKey> {
    listed
        .iter()
        .flat_map(|(id, key)| {
            let _ = parse_key(id, key);
            parse_key(&key_id(key), key).ok()
        })
        .collect()
}

fn meta(listed: &BTreeMap<String, FileMeta>) {
    for meta in listed.values() {
        let _ = metadata::check_file(b"{\"signed\":{},\"signatures\":[]}", meta);
    }
}

fn file<T: Role>(bytes: &[u8]) -> Option<SignedFile<T>> {
    let file = metadata::parse::<T>(bytes.to_vec()).ok()?;
    let _ = metadata::parse_time(&file.signed.common().expires);
    Some(file)
}

fn signatures<T>(file: &SignedFile<T>, keys: &[TufKey]) {
    for signature in &file.signatures {
        let Some(bytes) = fuzzing::trust_base64(&signature.sig) else {
            continue;
        };
        for key in keys {
            let _ = key.verifies(&signature.method, &file.signed_bytes, &bytes);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&role, bytes)) = data.split_first() else {
        return;
    };
    match role % 4 {
        0 => {
            if let Some(root) = file::<Root>(bytes) {
                let keys = keys(&root.signed.keys);
                signatures(&root, &keys);
            }
        }
        1 => {
            if let Some(timestamp) = file::<Timestamp>(bytes) {
                meta(&timestamp.signed.meta);
                signatures(&timestamp, &[]);
            }
        }
        2 => {
            if let Some(snapshot) = file::<Snapshot>(bytes) {
                meta(&snapshot.signed.meta);
            }
        }
        _ => {
            if let Some(targets) = file::<Targets>(bytes) {
                meta(&targets.signed.targets);
                if let Some(delegations) = &targets.signed.delegations {
                    let keys = keys(&delegations.keys);
                    signatures(&targets, &keys);
                    for role in &delegations.roles {
                        let _ = role.covers("latest");
                    }
                }
            }
        }
    }
});
