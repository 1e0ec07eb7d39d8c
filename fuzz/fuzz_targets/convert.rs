//! Arbitrary bytes into `tarsquash::convert`, as a plain tar, as a (probably corrupt) gzip or
//! zstd stream, and gzip-compressed: the conversion must return (an image or an error), never
//! panic, and when it succeeds on a plain tar, diff_id and tar_size must describe the input.
#![no_main]

use std::io::Write;

use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};
use tarsquash::decode::Compression;

fn options() -> tarsquash::Options {
    let mut options = tarsquash::Options::default();
    // Two threads: the compressor pool and the in-order writer are part of what is fuzzed.
    options.image.threads = 2;
    // Small blocks, so that small inputs still fill several blocks and fragments.
    options.image.block_size = 4096;
    options
}

fn convert(input: &mut dyn std::io::Read) -> Option<tarsquash::Conversion> {
    let out = tempfile::tempfile().expect("temporary file for the image");
    tarsquash::convert(input, out, &options()).ok()
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, tar)) = data.split_first() else {
        return;
    };
    match mode % 4 {
        0 => {
            if let Some(conversion) = convert(&mut &tar[..]) {
                let digest: String = Sha256::digest(tar)
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                assert_eq!(conversion.diff_id, format!("sha256:{digest}"));
                assert_eq!(conversion.tar_size, tar.len() as u64);
            }
        }
        1 => {
            convert(&mut Compression::Gzip.decoder(tar));
        }
        2 => {
            convert(&mut Compression::Zstd.decoder(tar));
        }
        _ => {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(tar).expect("gzip into memory");
            let gz = gz.finish().expect("gzip into memory");
            let (compression, mut input) =
                Compression::detect_decoder(&gz[..]).expect("reading from memory");
            assert_eq!(compression, Compression::Gzip);
            convert(&mut input);
        }
    }
});
