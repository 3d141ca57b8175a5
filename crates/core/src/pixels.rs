//! Decoding images to pixels, shared by the image validator and dedupe.

use std::io::Cursor;

use image::{AnimationDecoder as _, DynamicImage, ImageFormat, ImageReader, Limits};

use crate::content_hash::{ContentHasher, Digest};

/// Largest side decoded at all; guards memory against decompression bombs.
pub const DECODE_MAX_SIDE: u32 = 16_384;

/// Width and height from the image's header, without decoding its pixels.
pub fn dimensions(bytes: &[u8]) -> Result<(u32, u32), String> {
    reader(bytes)?
        .into_dimensions()
        .map_err(|e| format!("cannot read image header: {e}"))
}

fn reader(bytes: &[u8]) -> Result<ImageReader<Cursor<&[u8]>>, String> {
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| format!("cannot read image: {e}"))?;
    if reader.format().is_none() {
        return Err("not a recognized image format".to_owned());
    }
    Ok(reader)
}

/// Decodes `bytes` fully and strictly, whatever their format; the error
/// says why not. The header is read first, so an image that declares more
/// than [`DECODE_MAX_SIDE`] pixels a side is refused before any pixel is
/// allocated. Truncated JPEGs (which decoders pad silently) and animations
/// (of which only the first frame would be checked, but every frame
/// shown) are refused.
pub fn decode(bytes: &[u8]) -> Result<DynamicImage, String> {
    let (width, height) = dimensions(bytes)?;
    if width.max(height) > DECODE_MAX_SIDE {
        return Err(format!(
            "{width}x{height} declared, more than {DECODE_MAX_SIDE} px a side; not decoded"
        ));
    }
    let mut reader = reader(bytes)?;
    let format = reader.format();
    if format == Some(ImageFormat::Jpeg) && !ends_with_jpeg_eoi(bytes) {
        return Err("truncated JPEG: no end-of-image marker".to_owned());
    }
    if let Some(frames) = animation_frames(bytes, format)? {
        return Err(format!(
            "animated image ({frames} frames): only still images are checked and released"
        ));
    }
    let mut limits = Limits::default();
    limits.max_image_width = Some(DECODE_MAX_SIDE);
    limits.max_image_height = Some(DECODE_MAX_SIDE);
    // 512 MiB: an 8192² RGBA image (the validator's default largest) fits
    // twice; a 16000² bomb does not.
    limits.max_alloc = Some(512 << 20);
    reader.limits(limits);
    reader
        .decode()
        .map_err(|e| format!("cannot decode image: {e}"))
}

/// A complete JPEG ends with the EOI marker `FF D9` (trailing zero or
/// whitespace padding, which some encoders add, is allowed).
fn ends_with_jpeg_eoi(bytes: &[u8]) -> bool {
    let end = bytes
        .iter()
        .rposition(|b| !matches!(b, 0 | b' ' | b'\n' | b'\r'))
        .map_or(0, |i| i + 1);
    bytes[..end].ends_with(&[0xFF, 0xD9])
}

/// `Some(frames)` when the image is an animation of more than one frame
/// (GIF, APNG, animated WebP).
fn animation_frames(bytes: &[u8], format: Option<ImageFormat>) -> Result<Option<usize>, String> {
    let frames = match format {
        Some(ImageFormat::Gif) => image::codecs::gif::GifDecoder::new(Cursor::new(bytes))
            .map_err(|e| format!("cannot decode image: {e}"))?
            .into_frames()
            .take(2)
            .count(),
        Some(ImageFormat::Png) => {
            let decoder = image::codecs::png::PngDecoder::new(Cursor::new(bytes))
                .map_err(|e| format!("cannot decode image: {e}"))?;
            if decoder
                .is_apng()
                .map_err(|e| format!("cannot decode image: {e}"))?
            {
                2
            } else {
                1
            }
        }
        Some(ImageFormat::WebP) => {
            let decoder = image::codecs::webp::WebPDecoder::new(Cursor::new(bytes))
                .map_err(|e| format!("cannot decode image: {e}"))?;
            if decoder.has_animation() { 2 } else { 1 }
        }
        _ => 1,
    };
    Ok((frames > 1).then_some(frames))
}

/// Digest of the decoded pixels as RGBA8 plus dimensions: equal for two
/// encodings (PNG, BMP, re-compressed PNG, …) of the same pixels.
pub fn digest(image: &DynamicImage) -> Digest {
    let rgba = image.to_rgba8();
    ContentHasher::new("siuo.pixels.rgba8.v1")
        .u64(u64::from(rgba.width()))
        .u64(u64::from(rgba.height()))
        .field(rgba.as_raw())
        .finish()
}

/// The common file extension of a recognized format, from the bytes.
pub fn sniff_extension(bytes: &[u8]) -> Option<&'static str> {
    let format = image::guess_format(bytes).ok()?;
    format.extensions_str().first().copied()
}

/// The media type of a recognized format, from the bytes.
pub fn sniff_media_type(bytes: &[u8]) -> Option<&'static str> {
    image::guess_format(bytes)
        .ok()
        .map(|format| format.to_mime_type())
}

/// The image as a `data:` URL, the form OpenAI-compatible APIs accept inline.
pub fn data_url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    let media_type = sniff_media_type(bytes).unwrap_or("application/octet-stream");
    format!(
        "data:{media_type};base64,{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Rgb, RgbImage};

    fn photo() -> RgbImage {
        RgbImage::from_fn(96, 80, |x, y| {
            Rgb([(x * 2) as u8, (y * 3) as u8, ((x + y) % 255) as u8])
        })
    }

    fn encoded(format: ImageFormat) -> Vec<u8> {
        let mut bytes = Cursor::new(Vec::new());
        photo().write_to(&mut bytes, format).expect("encode");
        bytes.into_inner()
    }

    #[test]
    fn truncated_jpegs_are_refused_whole_ones_decode() {
        let jpeg = encoded(ImageFormat::Jpeg);
        assert!(decode(&jpeg).is_ok());
        let cut = &jpeg[..jpeg.len() * 2 / 3];
        assert_eq!(
            decode(cut).err().as_deref(),
            Some("truncated JPEG: no end-of-image marker")
        );
    }

    #[test]
    fn animated_gifs_are_refused_still_ones_decode() {
        use image::codecs::gif::GifEncoder;
        use image::{Delay, Frame};
        let still = encoded(ImageFormat::Gif);
        assert!(decode(&still).is_ok());
        let mut animated = Vec::new();
        {
            let mut encoder = GifEncoder::new(&mut animated);
            let frame = || {
                Frame::from_parts(
                    image::DynamicImage::ImageRgb8(photo()).to_rgba8(),
                    0,
                    0,
                    Delay::from_numer_denom_ms(100, 1),
                )
            };
            encoder
                .encode_frames(vec![frame(), frame(), frame()])
                .expect("encode");
        }
        let message = decode(&animated).err().unwrap_or_default();
        assert!(message.starts_with("animated image"), "{message}");
    }

    #[test]
    fn huge_declared_sizes_are_refused_from_the_header() {
        // A valid PNG header declaring 16000x16000 pixels, and no pixels.
        let mut png = Vec::new();
        png.extend_from_slice(b"\x89PNG\r\n\x1a\n");
        let mut ihdr = Vec::new();
        ihdr.extend_from_slice(&16_000u32.to_be_bytes());
        ihdr.extend_from_slice(&16_000u32.to_be_bytes());
        ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
        for (kind, data) in [
            (&b"IHDR"[..], &ihdr[..]),
            (b"IDAT", &[0x78, 0x9c, 0x03, 0x00]),
            (b"IEND", &[]),
        ] {
            png.extend_from_slice(&(data.len() as u32).to_be_bytes());
            let mut chunk = kind.to_vec();
            chunk.extend_from_slice(data);
            png.extend_from_slice(&chunk);
            png.extend_from_slice(&crc32(&chunk).to_be_bytes());
        }
        assert_eq!(dimensions(&png), Ok((16_000, 16_000)));
        let started = std::time::Instant::now();
        let message = decode(&png).err().unwrap_or_default();
        assert!(
            message.contains("cannot decode") || message.contains("not decoded"),
            "{message}"
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = 0xFFFF_FFFFu32;
        for byte in bytes {
            crc ^= u32::from(*byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
}
