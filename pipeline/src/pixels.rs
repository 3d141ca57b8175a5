//! Decoding images to pixels, shared by the image validator and dedupe.

use std::io::Cursor;

use image::{DynamicImage, ImageReader, Limits};

use crate::content_hash::{ContentHasher, Digest};

/// Largest side decoded at all; guards memory against decompression bombs.
pub const DECODE_MAX_SIDE: u32 = 16_384;

/// Decodes `bytes` fully, whatever their format; the error says why not.
pub fn decode(bytes: &[u8]) -> Result<DynamicImage, String> {
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| format!("cannot read image: {e}"))?;
    if reader.format().is_none() {
        return Err("not a recognized image format".to_owned());
    }
    let mut limits = Limits::default();
    limits.max_image_width = Some(DECODE_MAX_SIDE);
    limits.max_image_height = Some(DECODE_MAX_SIDE);
    limits.max_alloc = Some(1 << 30);
    reader.limits(limits);
    reader
        .decode()
        .map_err(|e| format!("cannot decode image: {e}"))
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
