//! `codecs <packcache version dir>`: the codec candidates on packcache's own
//! blocks. Decodes every pack of the directory back to raw values, cuts them
//! into 64 KiB blocks (as the writer does, near enough), and for each codec
//! times encoding and decoding every block on one core (medians of 5 runs),
//! and the ratio raw / stored. Prints one JSON line per codec.

use std::path::{Path, PathBuf};
use std::time::Instant;

use packcache::engine::pack::format::BLOCK_SIZE;
use packcache_limits::{decode, median, packs};

fn bodies(dir: &Path) -> Vec<Vec<u8>> {
    packs(dir).iter().map(|p| decode(p)).collect()
}

type Encode = fn(&[u8], &mut Vec<u8>);
type Decode = fn(&[u8], &mut [u8]);

fn zstd_at(level: i32) -> impl Fn(&[u8], &mut Vec<u8>) {
    move |block, out| {
        out.clear();
        out.extend_from_slice(&zstd::bulk::compress(block, level).unwrap());
    }
}

fn measure(name: &str, blocks: &[&[u8]], encode: &dyn Fn(&[u8], &mut Vec<u8>), decode: Decode) {
    let raw: usize = blocks.iter().map(|b| b.len()).sum();
    let mut stored: Vec<Vec<u8>> = vec![Vec::new(); blocks.len()];
    let mut enc_runs = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        for (b, out) in blocks.iter().zip(stored.iter_mut()) {
            encode(b, out);
        }
        enc_runs.push(t.elapsed().as_secs_f64());
    }
    let stored_bytes: usize = stored.iter().map(|s| s.len()).sum();
    let mut out = vec![0u8; BLOCK_SIZE * 2];
    let mut dec_runs = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        for (b, s) in blocks.iter().zip(&stored) {
            decode(s, &mut out[..b.len()]);
        }
        dec_runs.push(t.elapsed().as_secs_f64());
    }
    for (b, s) in blocks.iter().zip(&stored).step_by(97) {
        decode(s, &mut out[..b.len()]);
        assert_eq!(&out[..b.len()], *b, "{name} round trip");
    }
    let mib = raw as f64 / 1048576.0;
    println!(
        "{{\"codec\":\"{name}\",\"encodeMiBs\":{:.0},\"decodeMiBs\":{:.0},\"ratio\":{:.3},\"rawMiB\":{:.1}}}",
        mib / median(enc_runs),
        mib / median(dec_runs),
        raw as f64 / stored_bytes as f64,
        mib
    );
}

fn main() {
    let dir = PathBuf::from(std::env::args().nth(1).expect("usage: codecs <packcache version dir>"));
    let bodies = bodies(&dir);
    let blocks: Vec<&[u8]> = bodies.iter().flat_map(|b| b.chunks(BLOCK_SIZE)).collect();
    let zstd_decode: Decode = |s, out| {
        zstd::bulk::decompress_to_buffer(s, out).unwrap();
    };
    for level in [1, -1, -3] {
        measure(&format!("zstd {level}"), &blocks, &zstd_at(level), zstd_decode);
    }
    let flex_encode: Encode = |b, out| {
        out.resize(lz4_flex::block::get_maximum_output_size(b.len()), 0);
        let n = lz4_flex::block::compress_into(b, out).unwrap();
        out.truncate(n);
    };
    let flex_decode: Decode = |s, out| {
        lz4_flex::block::decompress_into(s, out).unwrap();
    };
    measure("lz4_flex", &blocks, &flex_encode, flex_decode);
    let c_decode: Decode = |s, out| {
        let n = out.len() as i32;
        lz4::block::decompress_to_buffer(s, Some(n), out).unwrap();
    };
    // LZ4's acceleration: the match finder skips ahead faster (1 = default).
    for accel in [1, 2, 4, 8] {
        let c_encode = move |b: &[u8], out: &mut Vec<u8>| {
            out.clear();
            let mode = lz4::block::CompressionMode::FAST(accel);
            out.extend_from_slice(&lz4::block::compress(b, Some(mode), false).unwrap());
        };
        measure(&format!("lz4 (C) acceleration {accel}"), &blocks, &c_encode, c_decode);
    }
}
