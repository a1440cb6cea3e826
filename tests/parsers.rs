//! Property-based tests of every parser that reads a file a user can hand fovea: random and
//! mutated inputs (bytes flipped, the file truncated or extended, header fields set to 0 or to
//! their maximum, starting from valid files) never panic, never make one allocation beyond a
//! bound, and end in `Ok` or an error.
//!
//! `CASES` cases per parser (`PROPTEST_CASES` overrides it).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::Path;

use proptest::prelude::*;

use fovea::data::{ImageSet, InputShape, cifar, folder, idx};
use fovea::train::checkpoint;

/// The largest single allocation a parser may make on these small inputs.
const MAX_ALLOCATION: usize = 256 << 20;
const CASES: u32 = 256;

/// The system allocator, recording the largest request of each thread.
struct Watched;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Watched {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

fn note(size: usize) {
    let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
}

#[global_allocator]
static ALLOCATOR: Watched = Watched;

/// Runs `parse` and fails if it made an allocation beyond the bound (a panic fails the case by
/// itself).
fn bounded<T>(parse: impl FnOnce() -> T) -> Result<T, TestCaseError> {
    LARGEST.with(|l| l.set(0));
    let out = parse();
    let largest = LARGEST.with(|l| l.get());
    prop_assert!(
        largest <= MAX_ALLOCATION,
        "one allocation of {largest} bytes"
    );
    Ok(out)
}

/// One change to a valid file.
#[derive(Debug, Clone)]
enum Mutation {
    Flip {
        at: usize,
        bits: u8,
    },
    Truncate {
        to: usize,
    },
    Extend {
        with: Vec<u8>,
    },
    /// A 4-byte field at `at` set to zero or to its maximum.
    Field {
        at: usize,
        max: bool,
    },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1u8..).prop_map(|(at, bits)| Mutation::Flip { at, bits }),
        any::<usize>().prop_map(|to| Mutation::Truncate { to }),
        proptest::collection::vec(any::<u8>(), 1..64).prop_map(|with| Mutation::Extend { with }),
        (any::<usize>(), any::<bool>()).prop_map(|(at, max)| Mutation::Field { at, max }),
    ]
}

/// `bytes` with `mutations` applied; a field's position is picked among the first `header`
/// bytes (where the counts and sizes are).
fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation], header: usize) -> Vec<u8> {
    for m in mutations {
        match m {
            Mutation::Flip { at, bits } if !bytes.is_empty() => {
                let i = at % bytes.len();
                bytes[i] ^= bits;
            }
            Mutation::Truncate { to } => bytes.truncate(to % (bytes.len() + 1)),
            Mutation::Extend { with } => bytes.extend_from_slice(with),
            Mutation::Field { at, max } if bytes.len() >= 4 => {
                let i = at % header.min(bytes.len() - 3).max(1);
                let v = if *max { 0xff } else { 0 };
                bytes[i..i + 4].fill(v);
            }
            _ => {}
        }
    }
    bytes
}

fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    proptest::collection::vec(mutation(), 1..4)
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, bytes).unwrap();
    gz.finish().unwrap()
}

fn valid_idx() -> Vec<u8> {
    idx::encode(&[3, 5, 4], &(0..60).collect::<Vec<u8>>())
}

fn valid_checkpoint() -> Vec<u8> {
    let parts = vec![
        ("model".to_string(), vec![1u8, 2, 3, 4]),
        ("optimizer".to_string(), vec![9u8; 40]),
    ];
    checkpoint::encode(&serde_json::json!({"step": 3, "classes": ["a"]}), &parts).unwrap()
}

/// A checkpoint body changed by `mutations`, then sealed again with a valid SHA-256, so that
/// the structure past the checksum is what is tested.
fn resealed(mutations: &[Mutation]) -> Vec<u8> {
    let mut bytes = valid_checkpoint();
    bytes.truncate(bytes.len() - 32);
    checkpoint::seal(mutate(bytes, mutations, 64))
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn valid_png() -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    image::GrayImage::from_fn(6, 5, |x, y| image::Luma([(x * 40 + y) as u8]))
        .write_to(&mut out, image::ImageFormat::Png)
        .unwrap();
    out.into_inner()
}

const CONFIG: &str = "seed = 1\n[data]\ndataset = \"sample\"\ntrain_limit = 100\n\
                      [model]\nkind = \"cnn\"\nhidden = [16]\n[train]\nepochs = 2\nlr = 0.01\n";

const EXPERIMENT: &str = "title = \"t\"\nseeds = [1, 2]\nmetric = \"test_accuracy\"\n\
                          [[arm]]\nname = \"a\"\nconfig = \"config/cnn.toml\"\nset = [\"train.epochs=1\"]\n";

const COMPARE: &str = "title = \"t\"\ntrain_sizes = [100]\n\
                       [[model]]\nname = \"cnn\"\nconfig = \"config/cnn.toml\"\n";

const METRICS: &str = "{\"epoch\":1,\"step\":2,\"split\":\"train\",\"scope\":\"step\",\"loss\":0.5,\
                       \"images_per_sec\":100.0,\"elapsed_s\":1.5}\n\
                       {\"epoch\":1,\"step\":2,\"split\":\"val\",\"scope\":\"epoch\",\"accuracy\":0.5,\
                       \"images_per_sec\":100.0,\"elapsed_s\":2.0}\n";

/// A text file mutated as bytes, read back as a string where it still is UTF-8.
fn mutated_text(text: &str, mutations: &[Mutation]) -> String {
    String::from_utf8_lossy(&mutate(text.as_bytes().to_vec(), mutations, 32)).into_owned()
}

proptest! {
    #![proptest_config(ProptestConfig {
        // a failing case is printed, not written into the source tree
        failure_persistence: None,
        ..ProptestConfig::with_cases(CASES)
    })]

    #[test]
    fn idx_raw(m in mutations()) {
        let bytes = mutate(valid_idx(), &m, 16);
        if let Ok(a) = bounded(|| idx::parse(&bytes))? {
            prop_assert_eq!(a.data.len(), a.dims.iter().product::<usize>());
        }
    }

    #[test]
    fn idx_gzipped(m in mutations(), before in any::<bool>()) {
        // mutated before compression (the IDX inside) or after (the gzip stream)
        let bytes = if before {
            gzip(&mutate(valid_idx(), &m, 16))
        } else {
            mutate(gzip(&valid_idx()), &m, 16)
        };
        bounded(|| idx::parse(&bytes))?.ok();
    }

    #[test]
    fn idx_random(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        bounded(|| idx::parse(&bytes))?.ok();
    }

    #[test]
    fn cifar_batches(m in mutations()) {
        let set = ImageSet::new(
            cifar::SHAPE,
            vec![7; 2 * 3072],
            vec![1, 9],
        ).unwrap();
        let bytes = mutate(cifar::encode(&set), &m, 8);
        bounded(|| cifar::parse(&bytes))?.ok();
    }

    #[test]
    fn images(m in mutations()) {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "x.png", &mutate(valid_png(), &m, 32));
        let shape = InputShape { channels: 1, height: 28, width: 28 };
        if let Ok(pixels) = bounded(|| folder::decode(&path, shape))? {
            prop_assert_eq!(pixels.len(), 28 * 28);
        }
        bounded(|| folder::decode_native(&path, 3))?.ok();
    }

    #[test]
    fn checkpoints(m in mutations(), reseal in any::<bool>()) {
        let bytes = if reseal { resealed(&m) } else { mutate(valid_checkpoint(), &m, 64) };
        bounded(|| checkpoint::decode::<serde_json::Value>(&bytes))?.ok();
    }

    #[test]
    fn config_files(m in mutations()) {
        let text = mutated_text(CONFIG, &m);
        bounded(|| fovea::config::from_str(&text, "mutated.toml"))?.ok();
    }

    #[test]
    fn set_overrides(key in "[a-z_.]{0,24}", value in "[-+0-9a-z_.\\[\\]{}=\" ,]{0,24}") {
        let item = format!("{key}={value}");
        bounded(|| fovea::config::load(None, &[item]))?.ok();
    }

    #[test]
    fn metrics_files(m in mutations()) {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), fovea::run_files::METRICS, mutated_text(METRICS, &m).as_bytes());
        bounded(|| fovea::run_files::read_metrics(dir.path()))?.ok();
    }

    #[test]
    fn experiment_and_compare_files(m in mutations()) {
        let dir = tempfile::tempdir().unwrap();
        let e = write(dir.path(), "e.toml", mutated_text(EXPERIMENT, &m).as_bytes());
        bounded(|| fovea::commands::experiment::read(&e))?.ok();
        let c = write(dir.path(), "c.toml", mutated_text(COMPARE, &m).as_bytes());
        bounded(|| fovea::commands::compare::read(&c))?.ok();
    }
}

/// The starting points are valid: the properties above test mutations of files that parse.
#[test]
fn the_unmutated_files_parse() {
    assert!(idx::parse(&valid_idx()).is_ok());
    assert!(checkpoint::decode::<serde_json::Value>(&valid_checkpoint()).is_ok());
    assert!(checkpoint::decode::<serde_json::Value>(&resealed(&[])).is_ok());
    assert!(fovea::config::from_str(CONFIG, "c.toml").is_ok());
    let dir = tempfile::tempdir().unwrap();
    let png = write(dir.path(), "x.png", &valid_png());
    assert!(
        folder::decode(
            &png,
            InputShape {
                channels: 1,
                height: 28,
                width: 28
            }
        )
        .is_ok()
    );
    write(dir.path(), fovea::run_files::METRICS, METRICS.as_bytes());
    assert_eq!(fovea::run_files::read_metrics(dir.path()).unwrap().len(), 2);
    let e = write(dir.path(), "e.toml", EXPERIMENT.as_bytes());
    fovea::commands::experiment::read(&e).unwrap();
    let c = write(dir.path(), "c.toml", COMPARE.as_bytes());
    fovea::commands::compare::read(&c).unwrap();
}
