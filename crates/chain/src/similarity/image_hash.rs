//! 64-bit pHashes of an image (grey 32×32, DCT, the 8×8 lowest
//! frequencies against their median): of the whole image, of its mirror,
//! of its centred 90% crop, and of its top and bottom 85% (a caption or
//! watermark band usually covers one edge) and theirs in the mirror image. pHash alone is shift-sensitive:
//! the extra regions are what make a small crop or a text overlay match.

use image::DynamicImage;
use image_hasher::{HashAlg, HasherConfig};

/// The hashes of one image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ImageHashes {
    pub full: u64,
    pub mirror: u64,
    /// Centred 90% crop.
    pub centre: u64,
    /// Top 85%: unchanged by a band added at the bottom.
    pub top: u64,
    /// Bottom 85%: unchanged by a band added at the top.
    pub bottom: u64,
    /// The same regions of the mirror image.
    pub top_mirror: u64,
    pub bottom_mirror: u64,
}

fn phash(image: &DynamicImage) -> u64 {
    let hasher = HasherConfig::new()
        .hash_size(8, 8)
        .resize_filter(image::imageops::FilterType::Triangle)
        .hash_alg(HashAlg::Median)
        .preproc_dct()
        .to_hasher();
    hasher
        .hash_image(image)
        .as_bytes()
        .iter()
        .take(8)
        .fold(0u64, |acc, byte| (acc << 8) | u64::from(*byte))
}

pub fn hashes(image: &DynamicImage) -> ImageHashes {
    let (w, h) = (image.width(), image.height());
    let mirror = image.fliph();
    let top = |i: &DynamicImage| phash(&i.crop_imm(0, 0, w, h * 17 / 20));
    let bottom = |i: &DynamicImage| phash(&i.crop_imm(0, h * 3 / 20, w, h * 17 / 20));
    ImageHashes {
        full: phash(image),
        mirror: phash(&mirror),
        centre: phash(&image.crop_imm(w / 20, h / 20, w * 9 / 10, h * 9 / 10)),
        top: top(image),
        bottom: bottom(image),
        top_mirror: top(&mirror),
        bottom_mirror: bottom(&mirror),
    }
}

/// The pairs of regions compared: (candidate, kept case). A candidate
/// that is a crop of a case matches the case's centre; a case that is a
/// crop of the candidate matches the candidate's centre.
pub fn pairs(a: &ImageHashes, b: &ImageHashes) -> [(u64, u64); 8] {
    [
        (a.full, b.full),
        (a.full, b.mirror),
        (a.full, b.centre),
        (a.centre, b.full),
        (a.top, b.top),
        (a.top_mirror, b.top),
        (a.bottom, b.bottom),
        (a.bottom_mirror, b.bottom),
    ]
}

/// Hamming distance of two images: the least over [`pairs`].
pub fn distance(a: &ImageHashes, b: &ImageHashes) -> u32 {
    pairs(a, b)
        .iter()
        .map(|(x, y)| (x ^ y).count_ones())
        .min()
        .unwrap_or(64)
}

pub fn to_hex(hashes: &ImageHashes) -> String {
    [
        hashes.full,
        hashes.mirror,
        hashes.centre,
        hashes.top,
        hashes.bottom,
        hashes.top_mirror,
        hashes.bottom_mirror,
    ]
    .iter()
    .map(|h| format!("{h:016x}"))
    .collect::<Vec<_>>()
    .join("-")
}

pub fn from_hex(text: &str) -> Option<ImageHashes> {
    let parts: Vec<u64> = text
        .split('-')
        .map(|p| u64::from_str_radix(p, 16).ok().filter(|_| p.len() == 16))
        .collect::<Option<_>>()?;
    match parts[..] {
        [full, mirror, centre, top, bottom, top_mirror, bottom_mirror] => Some(ImageHashes {
            full,
            mirror,
            centre,
            top,
            bottom,
            top_mirror,
            bottom_mirror,
        }),
        _ => None,
    }
}

/// The edits generators and maintainers make to a picture, for tests and
/// the dedupe bench: each must stay a near-duplicate of its original.
pub mod edits {
    use std::io::Cursor;

    use image::codecs::jpeg::JpegEncoder;
    use image::imageops::FilterType;
    use image::{DynamicImage, Rgba};

    pub const KINDS: [&str; 6] = [
        "half-size",
        "jpeg-35",
        "crop-90",
        "brighter",
        "text-overlay",
        "mirror",
    ];

    pub fn apply(image: &DynamicImage, kind: &str) -> DynamicImage {
        match kind {
            "half-size" => {
                image.resize(image.width() / 2, image.height() / 2, FilterType::Triangle)
            }
            "jpeg-35" => {
                let mut bytes = Cursor::new(Vec::new());
                let rgb = image.to_rgb8();
                let encoded = JpegEncoder::new_with_quality(&mut bytes, 35).encode_image(&rgb);
                match encoded
                    .ok()
                    .and_then(|()| image::load_from_memory(bytes.get_ref()).ok())
                {
                    Some(decoded) => decoded,
                    None => image.clone(),
                }
            }
            "crop-90" => {
                // A little off-centre: a crop is rarely exactly centred.
                let (w, h) = (image.width(), image.height());
                image.crop_imm(w / 25, h / 16, w * 9 / 10, h * 9 / 10)
            }
            "brighter" => image.brighten(40),
            "text-overlay" => {
                // A caption bar with blocky "letters", as memes and watermarks add.
                let mut rgba = image.to_rgba8();
                let (w, h) = (rgba.width(), rgba.height());
                let bar = h / 8;
                for y in h - bar..h {
                    for x in 0..w {
                        let letter = (x / (bar / 2).max(1)) % 2 == 0
                            && y > h - bar * 3 / 4
                            && y < h - bar / 4;
                        let value = if letter { 20 } else { 245 };
                        rgba.put_pixel(x, y, Rgba([value, value, value, 255]));
                    }
                }
                DynamicImage::ImageRgba8(rgba)
            }
            "mirror" => image.fliph(),
            _ => image.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn starter(name: &str) -> DynamicImage {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../prompts/library/starter")
            .join(name);
        image::open(path).expect("starter photograph")
    }

    const PHOTOS: [&str; 9] = [
        "astronaut.png",
        "brick.png",
        "camera.png",
        "chelsea.png",
        "clock_motion.png",
        "coffee.png",
        "coins.png",
        "retina.jpg",
        "rocket.jpg",
    ];

    #[test]
    fn every_edit_stays_near_and_distinct_photos_stay_apart() {
        let originals: Vec<(&str, ImageHashes)> =
            PHOTOS.iter().map(|n| (*n, hashes(&starter(n)))).collect();
        let mut worst_edit = 0;
        for (name, original) in &originals {
            let image = starter(name);
            for kind in edits::KINDS {
                let edited = hashes(&edits::apply(&image, kind));
                let d = distance(original, &edited);
                eprintln!("{name} {kind}: {d}");
                worst_edit = worst_edit.max(d);
            }
        }
        let mut closest_pair = 64;
        for (i, (a, ha)) in originals.iter().enumerate() {
            for (b, hb) in &originals[i + 1..] {
                let d = distance(ha, hb);
                eprintln!("{a} vs {b}: {d}");
                closest_pair = closest_pair.min(d);
            }
        }
        assert!(
            worst_edit <= crate::similarity::config::DEFAULT_IMAGE_DISTANCE,
            "edit at {worst_edit}"
        );
        assert!(
            closest_pair > crate::similarity::config::DEFAULT_IMAGE_DISTANCE,
            "distinct at {closest_pair}"
        );
    }
}
