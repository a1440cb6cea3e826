//! Dataset loaders on small files the tests make, and downloading from a loopback HTTP server.

mod common;

use std::io::Write;
use std::path::Path;

use fovea::data::sources::{self, Checksum, RemoteFile};
use fovea::data::{ImageSet, InputShape, cifar, idx};
use sha2::Digest;

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// Writes an MNIST-layout dataset of `n` train and `m` test 28×28 images.
fn write_idx_dataset(dir: &Path, n: usize, m: usize) {
    std::fs::create_dir_all(dir).unwrap();
    for (prefix, count) in [("train", n), ("t10k", m)] {
        let images: Vec<u8> = (0..count * 784).map(|i| (i * 7 % 256) as u8).collect();
        let labels: Vec<u8> = (0..count).map(|i| (i % 10) as u8).collect();
        std::fs::write(
            dir.join(format!("{prefix}-images-idx3-ubyte.gz")),
            gz(&idx::encode(&[count, 28, 28], &images)),
        )
        .unwrap();
        // labels raw (not gzipped): both forms are accepted
        std::fs::write(
            dir.join(format!("{prefix}-labels-idx1-ubyte")),
            idx::encode(&[count], &labels),
        )
        .unwrap();
    }
}

#[test]
fn mnist_layout_loads_from_a_given_folder() {
    let dir = tempfile::tempdir().unwrap();
    write_idx_dataset(dir.path(), 50, 20);
    let spec = sources::catalog("mnist").unwrap();
    let found = sources::locate(spec, Some(dir.path())).unwrap();
    let raw = sources::load_dir(spec, &found).unwrap();
    assert_eq!((raw.train.len(), raw.test.len()), (50, 20));
    assert_eq!(
        raw.train.shape,
        InputShape {
            channels: 1,
            height: 28,
            width: 28
        }
    );
    assert_eq!(raw.files.len(), 4);
    assert!(raw.files.iter().all(|f| f.sha256.len() == 64));
}

#[test]
fn malformed_idx_files_are_reported_with_the_file_name() {
    let dir = tempfile::tempdir().unwrap();
    write_idx_dataset(dir.path(), 10, 10);
    let bad = dir.path().join("train-images-idx3-ubyte.gz");
    let bytes = std::fs::read(&bad).unwrap();
    std::fs::write(&bad, &bytes[..bytes.len() / 2]).unwrap();
    let spec = sources::catalog("fashion-mnist").unwrap();
    let err = format!("{:#}", sources::load_dir(spec, dir.path()).unwrap_err());
    assert!(
        err.contains("train-images-idx3-ubyte.gz") && err.contains("gzip"),
        "{err}"
    );

    // Labels that disagree with the image count
    write_idx_dataset(dir.path(), 10, 10);
    std::fs::write(
        dir.path().join("t10k-labels-idx1-ubyte"),
        idx::encode(&[9], &[0; 9]),
    )
    .unwrap();
    let err = format!("{:#}", sources::load_dir(spec, dir.path()).unwrap_err());
    assert!(err.contains("10 images but 9 labels"), "{err}");
}

#[test]
fn cifar10_binary_loads_from_the_official_layout() {
    let dir = tempfile::tempdir().unwrap();
    let batches = dir.path().join("cifar-10-batches-bin");
    std::fs::create_dir_all(&batches).unwrap();
    let set = |n: usize| {
        ImageSet::new(
            cifar::SHAPE,
            (0..n * 3072).map(|i| (i % 251) as u8).collect(),
            (0..n).map(|i| (i % 10) as u32).collect(),
        )
        .unwrap()
    };
    for f in cifar::TRAIN_FILES {
        std::fs::write(batches.join(f), cifar::encode(&set(4))).unwrap();
    }
    std::fs::write(batches.join(cifar::TEST_FILE), cifar::encode(&set(3))).unwrap();
    let spec = sources::catalog("cifar10").unwrap();
    let raw = sources::load_dir(spec, &sources::locate(spec, Some(dir.path())).unwrap()).unwrap();
    assert_eq!((raw.train.len(), raw.test.len()), (20, 3));
    assert_eq!(raw.train.shape.channels, 3);
}

#[test]
fn image_folder_infers_classes_channels_and_size() {
    let dir = tempfile::tempdir().unwrap();
    for (class, color) in [("cats", [200u8, 40, 40]), ("dogs", [40, 40, 200])] {
        std::fs::create_dir_all(dir.path().join(class)).unwrap();
        for i in 0..5 {
            let img = image::RgbImage::from_pixel(12 + i, 10, image::Rgb(color));
            img.save(dir.path().join(class).join(format!("{i}.png")))
                .unwrap();
        }
    }
    std::fs::write(dir.path().join("cats").join("notes.txt"), "not an image").unwrap();
    let raw = fovea::data::folder::load(dir.path(), 16, 0.2, 1).unwrap();
    assert_eq!(raw.classes, vec!["cats", "dogs"]);
    assert_eq!(
        raw.train.shape,
        InputShape {
            channels: 3,
            height: 16,
            width: 16
        }
    );
    assert_eq!(raw.train.len() + raw.test.len(), 10);
    assert_eq!(raw.test.len(), 2);
    // red stays in the red plane
    assert!(raw.train.image(0)[0] > 150 && raw.train.image(0)[2 * 256] < 80);

    std::fs::write(dir.path().join("dogs").join("broken.png"), b"not a png").unwrap();
    let err = format!(
        "{:#}",
        fovea::data::folder::load(dir.path(), 16, 0.2, 1).unwrap_err()
    );
    assert!(err.contains("broken.png"), "{err}");
}

/// Serves `files` (path → body) on 127.0.0.1 until `requests` requests were answered.
fn serve(
    files: Vec<(&'static str, Vec<u8>)>,
    requests: usize,
) -> (String, std::thread::JoinHandle<()>) {
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let addr = format!("http://{}", server.server_addr().to_ip().unwrap());
    let handle = std::thread::spawn(move || {
        for _ in 0..requests {
            let Ok(Some(req)) = server.recv_timeout(std::time::Duration::from_secs(20)) else {
                return;
            };
            let body = files
                .iter()
                .find(|(p, _)| *p == req.url())
                .map(|(_, b)| b.clone());
            let _ = match body {
                Some(b) => req.respond(tiny_http::Response::from_data(b)),
                None => req.respond(tiny_http::Response::empty(404)),
            };
        }
    });
    (addr, handle)
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

#[test]
fn download_verifies_sha256_against_a_loopback_server() {
    let body: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
    let sha = hex::encode(sha2::Sha256::digest(&body));
    let (addr, server) = serve(
        vec![
            ("/good.bin", body.clone()),
            ("/bad.bin", b"tampered".to_vec()),
        ],
        3,
    );
    let dir = tempfile::tempdir().unwrap();

    let good = RemoteFile {
        name: "good.bin",
        url: leak(format!("{addr}/good.bin")),
        checksum: Checksum::Sha256(leak(sha.clone())),
    };
    assert_eq!(
        sources::download_file(&good, dir.path(), true).unwrap(),
        sha
    );
    assert_eq!(std::fs::read(dir.path().join("good.bin")).unwrap(), body);

    let bad = RemoteFile {
        name: "bad.bin",
        url: leak(format!("{addr}/bad.bin")),
        checksum: Checksum::Sha256(leak(sha.clone())),
    };
    let err = format!(
        "{:#}",
        sources::download_file(&bad, dir.path(), true).unwrap_err()
    );
    assert!(err.contains("SHA-256 mismatch"), "{err}");
    assert!(
        !dir.path().join("bad.bin").exists(),
        "a file that failed verification must not be kept"
    );
    assert!(
        std::fs::read_dir(dir.path()).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".part"))
    );

    let missing = RemoteFile {
        name: "x.bin",
        url: leak(format!("{addr}/missing.bin")),
        checksum: Checksum::Sha256(leak(sha)),
    };
    let err = format!(
        "{:#}",
        sources::download_file(&missing, dir.path(), true).unwrap_err()
    );
    assert!(err.contains("missing.bin"), "{err}");
    server.join().unwrap();
}

#[test]
fn data_info_explains_where_a_missing_dataset_was_looked_for() {
    let dir = tempfile::tempdir().unwrap();
    let out = common::run(dir.path(), &["data", "info", "--dataset", "mnist"]);
    assert_eq!(out.status.code(), Some(2));
    let t = common::text(&out);
    assert!(
        t.contains("fovea data download mnist") && t.contains("no-datasets-here"),
        "{t}"
    );
}

#[test]
fn data_info_reports_what_the_sample_decodes_to_and_its_files_digests() {
    let dir = tempfile::tempdir().unwrap();
    let out = common::run(dir.path(), &["data", "info", "--dataset", "sample"]);
    assert!(out.status.success(), "{}", common::text(&out));
    let t = common::text(&out);
    // The counts and shape come from decoding the files (the origin text is a constant).
    assert!(
        t.contains("— 10000 train + 2000 test images of 1×28×28, 10 classes"),
        "{t}"
    );
    assert!(t.contains("classes: T-shirt/top, Trouser, Pullover"), "{t}");
    for (file, name) in [
        ("train-images-idx3-ubyte.gz", "train-images"),
        ("train-labels-idx1-ubyte.gz", "train-labels"),
        ("t10k-images-idx3-ubyte.gz", "test-images"),
        ("t10k-labels-idx1-ubyte.gz", "test-labels"),
    ] {
        let bytes = std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("data/sample")
                .join(file),
        )
        .unwrap();
        let line = format!(
            "builtin:{name}  {} bytes  sha256 {}",
            bytes.len(),
            hex::encode(sha2::Sha256::digest(&bytes))
        );
        assert!(t.contains(&line), "{line} missing from: {t}");
    }
}

#[test]
fn every_image_format_the_build_decodes_is_read_and_others_are_named() {
    let dir = tempfile::tempdir().unwrap();
    for (class, v) in [("a", 30u8), ("b", 220)] {
        common::image_class(&dir.path().join(class), 3, 6, v);
    }
    // A portable graymap, written by hand (P5: binary PGM).
    let mut pgm = b"P5\n6 6\n255\n".to_vec();
    pgm.extend(std::iter::repeat_n(40u8, 36));
    std::fs::write(dir.path().join("a").join("extra.pgm"), &pgm).unwrap();
    let raw = fovea::data::folder::load(dir.path(), 0, 0.3, 1).unwrap();
    assert_eq!(raw.train.len() + raw.test.len(), 7);

    // An image format this build cannot decode is an error that names the file.
    std::fs::write(dir.path().join("b").join("odd.tga"), [0u8; 30]).unwrap();
    let err = format!(
        "{:#}",
        fovea::data::folder::load(dir.path(), 0, 0.3, 1).unwrap_err()
    );
    assert!(err.contains("odd.tga"), "{err}");
}

#[test]
fn an_incomplete_cifar10_folder_is_passed_over() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let set = |n: usize| {
        ImageSet::new(
            cifar::SHAPE,
            (0..n * 3072).map(|i| (i % 249) as u8).collect(),
            (0..n).map(|i| (i % 10) as u32).collect(),
        )
        .unwrap()
    };
    // $FOVEA_DATA/cifar10 holds only the test batch; the user cache holds the whole dataset.
    let partial = d.join("no-datasets-here/cifar10");
    std::fs::create_dir_all(&partial).unwrap();
    std::fs::write(partial.join(cifar::TEST_FILE), cifar::encode(&set(2))).unwrap();
    let full = d.join("cache/fovea/cifar10");
    std::fs::create_dir_all(&full).unwrap();
    for f in cifar::TRAIN_FILES {
        std::fs::write(full.join(f), cifar::encode(&set(3))).unwrap();
    }
    std::fs::write(full.join(cifar::TEST_FILE), cifar::encode(&set(2))).unwrap();
    let out = common::run(d, &["data", "info", "--dataset", "cifar10"]);
    let t = common::text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains("cache/fovea/cifar10") && t.contains("15 train"),
        "{t}"
    );
}

#[test]
fn a_one_image_class_is_never_held_out_entirely() {
    // class 1 has a single image; holding out half of each class must keep it for training
    let labels = [0u32, 0, 0, 0, 1, 0, 0];
    for seed in 0..20 {
        let (kept, held) = fovea::data::stratified_split(&labels, 2, 0.5, seed);
        assert!(kept.contains(&4), "seed {seed}: {kept:?} / {held:?}");
    }
}

#[test]
fn train_and_test_limits_keep_class_proportions() {
    let config = fovea::data::DataConfig {
        train_limit: 100,
        test_limit: 50,
        val_fraction: 0.1,
        ..Default::default()
    };
    let data = fovea::data::load(&config, 1).unwrap();
    assert_eq!(
        (data.train.len(), data.val.len(), data.test.len()),
        (100, 1000, 50)
    );
    assert_eq!(data.train.class_counts(10), vec![10; 10]);
    assert_eq!(data.test.class_counts(10), vec![5; 10]);
    assert_eq!((data.source.train, data.source.test), (100, 50));
    // the same seed picks the same images
    let again = fovea::data::load(&config, 1).unwrap();
    assert_eq!(again.train, data.train);
}

#[test]
fn labels_per_class_keeps_n_labelled_images_of_each_class_and_counts_the_rest() {
    let config = |n: usize| fovea::data::DataConfig {
        train_limit: 1000,
        labels_per_class: n,
        ..Default::default()
    };
    let data = fovea::data::load(&config(7), 3).unwrap();
    assert_eq!(data.train.len(), 70);
    assert_eq!(data.train.class_counts(10), vec![7; 10]);
    assert_eq!((data.source.train, data.source.unlabelled), (70, 930));
    // validation and test sets keep every image
    let all = fovea::data::load(&config(0), 3).unwrap();
    assert_eq!((all.train.len(), all.source.unlabelled), (1000, 0));
    assert_eq!((&data.val, &data.test), (&all.val, &all.test));
    // the same seed keeps the same labels, another seed others
    let same = fovea::data::load(&config(7), 3).unwrap();
    assert_eq!(same.train, data.train);
    let other = fovea::data::load(&config(7), 4).unwrap();
    assert_ne!(other.train, data.train);
    // the unlabelled images are the others, labels withheld; a semi-supervised epoch reads all
    assert_eq!(data.unlabelled.len(), 930);
    assert!(data.unlabelled.labels.iter().all(|&y| y == 0));
    let every = data.all_without_labels();
    assert_eq!(every.len(), 1000);
    assert_eq!(every.image(0), data.train.image(0));
    let sorted = |set: &ImageSet| {
        let mut v: Vec<Vec<u8>> = (0..set.len()).map(|i| set.image(i).to_vec()).collect();
        v.sort();
        v
    };
    assert_eq!(
        sorted(&every),
        sorted(&all.train),
        "not the same 1,000 images"
    );
}

#[test]
fn an_image_folder_may_hold_unlabelled_images_beside_its_classes() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    common::image_class(&root.join("ants"), 6, 5, 10);
    common::image_class(&root.join("bees"), 6, 5, 200);
    common::image_class(&root.join("unlabelled"), 4, 5, 100);
    let raw = fovea::data::folder::load(root, 0, 0.5, 1).unwrap();
    assert_eq!(
        raw.classes,
        vec!["ants", "bees"],
        "unlabelled/ is not a class"
    );
    assert_eq!(raw.unlabelled.as_ref().map(|u| u.len()), Some(4));
    assert!(
        raw.files[0].path.contains("manifest of 16 image files"),
        "{:?}",
        raw.files
    );
    let config = fovea::data::DataConfig {
        dataset: "folder".into(),
        path: Some(root.to_path_buf()),
        val_fraction: 0.0,
        ..Default::default()
    };
    let data = fovea::data::load(&config, 1).unwrap();
    assert_eq!((data.source.unlabelled, data.unlabelled.len()), (4, 4));
    assert_eq!(data.unlabelled.image(0)[0], 100);
    assert_eq!(data.all_without_labels().len(), data.train.len() + 4);
    let out = common::fovea(root)
        .args(["data", "info", "--dataset", "folder", "--data-dir"])
        .arg(root)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains(" train + 4 unlabelled + "), "{said}");
    // test images need labels
    common::image_class(&root.join("t/train/ants"), 2, 5, 10);
    common::image_class(&root.join("t/train/bees"), 2, 5, 200);
    common::image_class(&root.join("t/test/ants"), 1, 5, 10);
    common::image_class(&root.join("t/test/bees"), 1, 5, 200);
    common::image_class(&root.join("t/test/unlabelled"), 1, 5, 100);
    let err = format!(
        "{:#}",
        fovea::data::folder::load(&root.join("t"), 0, 0.5, 1).unwrap_err()
    );
    assert!(err.contains("test images need labels"), "{err}");
}

#[test]
fn an_image_folder_with_train_and_test_subfolders_keeps_them_apart() {
    let dir = tempfile::tempdir().unwrap();
    let write = |split: &str, class: &str, n: u8, v: u8| {
        common::image_class(&dir.path().join(split).join(class), n, 5, v);
    };
    write("train", "ants", 4, 10);
    write("train", "bees", 3, 200);
    write("test", "ants", 2, 50);
    write("test", "bees", 1, 150);
    let raw = fovea::data::folder::load(dir.path(), 0, 0.5, 1).unwrap();
    assert_eq!(raw.classes, vec!["ants", "bees"]);
    assert_eq!((raw.train.len(), raw.test.len()), (7, 3));
    assert_eq!(raw.test.labels, vec![0, 0, 1]);
    assert_eq!(raw.test.image(2)[0], 150);
    assert_eq!(raw.files.len(), 1);
    assert!(
        raw.files[0].path.contains("manifest of 10 image files"),
        "{:?}",
        raw.files
    );
    // a test class the training set does not have is an error that names it
    write("test", "wasps", 1, 90);
    let err = format!(
        "{:#}",
        fovea::data::folder::load(dir.path(), 0, 0.5, 1).unwrap_err()
    );
    assert!(err.contains("wasps"), "{err}");
}

#[test]
fn download_unpacks_an_archive_and_writes_sha256sums() {
    // A CIFAR-10 archive in the official layout, served from loopback.
    let set = |n: usize| {
        ImageSet::new(
            cifar::SHAPE,
            (0..n * 3072).map(|i| (i % 241) as u8).collect(),
            (0..n).map(|i| (i % 10) as u32).collect(),
        )
        .unwrap()
    };
    let mut tar = tar::Builder::new(Vec::new());
    for f in cifar::TRAIN_FILES.iter().chain([&cifar::TEST_FILE]) {
        let body = cifar::encode(&set(2));
        let mut header = tar::Header::new_gnu();
        header.set_size(body.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(
            &mut header,
            format!("cifar-10-batches-bin/{f}"),
            body.as_slice(),
        )
        .unwrap();
    }
    let archive = gz(&tar.into_inner().unwrap());
    let md5 = hex::encode(md5::Md5::digest(&archive));
    let sha = hex::encode(sha2::Sha256::digest(&archive));
    let (addr, server) = serve(vec![("/c.tar.gz", archive)], 1);
    let spec: &'static sources::DatasetSpec = Box::leak(Box::new(sources::DatasetSpec {
        name: "cifar10",
        format: sources::Format::Cifar10,
        classes: &cifar::CLASSES,
        files: Box::leak(Box::new([RemoteFile {
            name: "cifar-10-binary.tar.gz",
            url: leak(format!("{addr}/c.tar.gz")),
            checksum: Checksum::Md5(leak(md5)),
        }])),
    }));
    let dir = tempfile::tempdir().unwrap();
    sources::download(spec, dir.path(), true).unwrap();
    server.join().unwrap();
    let sums = std::fs::read_to_string(dir.path().join("SHA256SUMS")).unwrap();
    assert_eq!(sums, format!("{sha}  cifar-10-binary.tar.gz\n"));
    let raw = sources::load_dir(spec, dir.path()).unwrap();
    assert_eq!((raw.train.len(), raw.test.len()), (10, 2));
}

#[test]
fn a_download_that_breaks_off_keeps_nothing_and_says_how_much_arrived() {
    // A server that promises 100,000 bytes, sends 1,000 and hangs up.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut request = [0u8; 4096];
        let _ = std::io::Read::read(&mut stream, &mut request);
        stream
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
            .unwrap();
        stream.write_all(&[7u8; 1000]).unwrap();
    });
    let dir = tempfile::tempdir().unwrap();
    let file = RemoteFile {
        name: "cut.bin",
        url: leak(format!("http://{addr}/cut.bin")),
        checksum: Checksum::Sha256(leak("0".repeat(64))),
    };
    let err = format!(
        "{:#}",
        sources::download_file(&file, dir.path(), true).unwrap_err()
    );
    server.join().unwrap();
    assert!(
        err.contains("broke off after 1000 bytes of 100000"),
        "{err}"
    );
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn an_archive_entry_that_would_land_outside_its_folder_is_refused() {
    for name in [
        "../escaped.txt",
        "/escaped-absolute.txt",
        "a/../../escaped.txt",
    ] {
        let mut header = tar::Header::new_old();
        // Written into the header by hand: the tar crate's own builder refuses such names.
        header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        header.set_size(3);
        header.set_mode(0o644);
        header.set_cksum();
        let mut tar = tar::Builder::new(Vec::new());
        tar.append(&header, &b"bad"[..]).unwrap();
        let archive = gz(&tar.into_inner().unwrap());
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("inside");
        std::fs::create_dir(&dir).unwrap();
        let err = format!("{:#}", sources::unpack(&archive[..], &dir).unwrap_err());
        assert!(err.contains("would land outside"), "{name}: {err}");
        assert!(!root.path().join("escaped.txt").exists());
        assert!(std::fs::read_dir(&dir).unwrap().next().is_none());
    }
}
