//! Images decoded at ingest, handed to the embedding worker so that an instance is decoded once
//! between the two: ingest decodes every image to know whether it can be used at all, and the
//! worker used to read the file back and decode it again. The hand-off is bounded by the bytes
//! its images hold; past that the oldest are dropped, and an image not found here (dropped,
//! stored before a restart, or received by another replica) is decoded from its file as before.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use crate::dicom::DecodedImage;
use crate::domain::ContentHash;

/// Decoded bytes held at most by default: about 256 single-frame 512 × 512 images.
pub const DEFAULT_HANDOFF_BYTES: usize = 256 * 1024 * 1024;

#[derive(Debug)]
pub struct DecodedHandoff {
    capacity_bytes: usize,
    inner: Mutex<Held>,
}

#[derive(Debug, Default)]
struct Held {
    images: HashMap<ContentHash, Arc<DecodedImage>>,
    /// Arrival order, for dropping the oldest first (a key taken already is skipped).
    order: VecDeque<ContentHash>,
    bytes: usize,
}

/// The bytes a decoded image holds.
fn size_of(image: &DecodedImage) -> usize {
    image
        .frames
        .iter()
        .map(|f| f.len() * std::mem::size_of::<f32>())
        .sum()
}

impl DecodedHandoff {
    pub fn new(capacity_bytes: usize) -> Self {
        Self {
            capacity_bytes,
            inner: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Held> {
        // The maps stay consistent whatever panicked while holding the lock (at worst an image
        // is missing, and is decoded from its file), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps the decoded image of the file `hash` for the worker; an image larger than the
    /// whole hand-off is not kept.
    pub fn keep(&self, hash: ContentHash, image: Arc<DecodedImage>) {
        let size = size_of(&image);
        if size > self.capacity_bytes {
            return;
        }
        let mut held = self.lock();
        while held.bytes + size > self.capacity_bytes {
            let Some(oldest) = held.order.pop_front() else {
                break;
            };
            if let Some(dropped) = held.images.remove(&oldest) {
                held.bytes -= size_of(&dropped);
            }
        }
        if let Some(previous) = held.images.insert(hash.clone(), image) {
            held.bytes -= size_of(&previous);
        }
        held.bytes += size;
        held.order.push_back(hash);
        // Keys taken since stay in the queue until eviction reaches them; compacted when they
        // outnumber the images held.
        if held.order.len() > 2 * held.images.len() + 64 {
            let Held { images, order, .. } = &mut *held;
            order.retain(|key| images.contains_key(key));
        }
    }

    /// The decoded image of the file `hash`, when ingest left it here; it is no longer held.
    pub fn take(&self, hash: &ContentHash) -> Option<Arc<DecodedImage>> {
        let mut held = self.lock();
        let image = held.images.remove(hash)?;
        held.bytes -= size_of(&image);
        Some(image)
    }

    /// Bytes held now.
    #[cfg(test)]
    fn held_bytes(&self) -> usize {
        self.lock().bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(values: usize) -> Arc<DecodedImage> {
        Arc::new(DecodedImage {
            rows: 1,
            columns: values as u32,
            channels: 1,
            frames: vec![vec![0.5; values]],
        })
    }

    fn hash(n: u8) -> ContentHash {
        ContentHash::parse(&format!("{n:02x}").repeat(32)).unwrap()
    }

    #[test]
    fn an_image_is_taken_once() {
        let handoff = DecodedHandoff::new(1024);
        handoff.keep(hash(1), image(10));
        assert_eq!(handoff.held_bytes(), 40);
        assert!(handoff.take(&hash(1)).is_some());
        assert!(handoff.take(&hash(1)).is_none());
        assert_eq!(handoff.held_bytes(), 0);
    }

    #[test]
    fn the_oldest_images_make_room_and_a_too_large_one_is_not_kept() {
        // Room for 100 values (400 bytes).
        let handoff = DecodedHandoff::new(400);
        handoff.keep(hash(1), image(40));
        handoff.keep(hash(2), image(40));
        handoff.keep(hash(3), image(40));
        assert!(handoff.take(&hash(1)).is_none(), "the oldest made room");
        assert!(handoff.held_bytes() <= 400);
        handoff.keep(hash(4), image(101));
        assert!(handoff.take(&hash(4)).is_none());
        assert!(handoff.take(&hash(2)).is_some());
        assert!(handoff.take(&hash(3)).is_some());
        assert_eq!(handoff.held_bytes(), 0);
    }
}
