//! Feed tickets that verify themselves.
//!
//! A browser's `EventSource` cannot send a bearer token, so
//! `POST /tasks/events/tickets` hands it a ticket for the feed's URL. The
//! feed's Function URL is public: anybody can send it anything. A ticket is
//! therefore sealed (AES-256-GCM) with a key of the table's, so the feed
//! checks it in memory: a malformed or expired ticket is refused before any
//! key is needed, a forged one by its tag, and neither costs a DynamoDB
//! read (the key is read once per instance, `crate::http::ticket`). Sealing, not
//! only signing, keeps the caller's id out of URLs and the logs that keep
//! them.
//!
//! Layout, base64url without padding:
//! `version (1) | expiry, epoch seconds (8, big-endian) | nonce (12) |
//! sealed caller id (its length + a 16-byte tag)`. The version and expiry
//! are in the clear (checked first) and authenticated as the seal's
//! associated data.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};

use crate::domain::caller::{Caller, MAX_CALLER_LEN};

/// What went wrong making or using a key: the system's random source or
/// the cipher failed (never the caller's doing).
#[derive(Debug, thiserror::Error)]
#[error("ticket key: {0}")]
pub struct TicketKeyError(&'static str);

/// A ticket's content: whose feed it opens, and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    pub owner: Caller,
    pub expires_at: DateTime<Utc>,
}

/// Bytes of a ticket key (AES-256).
pub const KEY_LEN: usize = 32;

const VERSION: u8 = 1;
/// Version and expiry: the part read before the key.
const HEADER_LEN: usize = 1 + 8;
const TAG_LEN: usize = 16;
const MIN_LEN: usize = HEADER_LEN + NONCE_LEN + 1 + TAG_LEN;
const MAX_LEN: usize = HEADER_LEN + NONCE_LEN + MAX_CALLER_LEN + TAG_LEN;

/// The longest ticket there is, in characters: anything longer is refused
/// unread.
pub const MAX_TICKET_CHARS: usize = MAX_LEN.div_ceil(3) * 4;

/// A key that seals and opens tickets.
pub struct TicketKey(LessSafeKey);

impl std::fmt::Debug for TicketKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TicketKey(..)")
    }
}

impl TicketKey {
    pub fn new(bytes: &[u8; KEY_LEN]) -> Result<Self, TicketKeyError> {
        UnboundKey::new(&AES_256_GCM, bytes)
            .map(|key| TicketKey(LessSafeKey::new(key)))
            .map_err(|_| TicketKeyError("a key of the wrong length"))
    }

    /// A new random key (what the store keeps when it has none yet).
    pub fn random_bytes() -> Result<[u8; KEY_LEN], TicketKeyError> {
        let mut bytes = [0u8; KEY_LEN];
        getrandom::fill(&mut bytes).map_err(|_| TicketKeyError("no random bytes for a key"))?;
        Ok(bytes)
    }

    /// `ticket`, sealed: what goes into the feed's URL.
    pub fn seal(&self, ticket: &Ticket) -> Result<String, TicketKeyError> {
        let mut nonce = [0u8; NONCE_LEN];
        // The operating system's random source (getrandom(2)), as uuid's
        // v4 ids: aws-lc's own generator spends ~30 ms seeding itself on
        // its first use, which would land on a cold start's first ticket.
        getrandom::fill(&mut nonce).map_err(|_| TicketKeyError("no random bytes for a nonce"))?;
        let header = header(ticket.expires_at.timestamp());
        let mut sealed = ticket.owner.id().as_bytes().to_vec();
        self.0
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(header),
                &mut sealed,
            )
            .map_err(|_| TicketKeyError("sealing failed"))?;
        let mut bytes = Vec::with_capacity(HEADER_LEN + NONCE_LEN + sealed.len());
        bytes.extend_from_slice(&header);
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(&sealed);
        Ok(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// The ticket `sealed` carries, if this key sealed it: `None` for a
    /// forgery, or a ticket altered in any bit.
    pub fn open(&self, sealed: Sealed) -> Option<Ticket> {
        let Sealed {
            header,
            nonce,
            mut body,
            expires_at,
        } = sealed;
        let owner = self
            .0
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(header),
                &mut body,
            )
            .ok()?;
        let owner = Caller::new(std::str::from_utf8(owner).ok()?)?;
        Some(Ticket { owner, expires_at })
    }
}

/// A ticket as read from a URL, well formed and not expired, not yet
/// checked against the key.
#[derive(Debug)]
pub struct Sealed {
    header: [u8; HEADER_LEN],
    nonce: [u8; NONCE_LEN],
    body: Vec<u8>,
    pub expires_at: DateTime<Utc>,
}

impl Sealed {
    /// `ticket` if it has a ticket's form and has not expired at `now`;
    /// `None` otherwise. Needs no key, no I/O: what refuses junk for free.
    pub fn parse(ticket: &str, now: DateTime<Utc>) -> Option<Sealed> {
        if ticket.len() > MAX_TICKET_CHARS {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(ticket).ok()?;
        if !(MIN_LEN..=MAX_LEN).contains(&bytes.len()) || bytes[0] != VERSION {
            return None;
        }
        let header: [u8; HEADER_LEN] = bytes[..HEADER_LEN].try_into().ok()?;
        let seconds = i64::from_be_bytes(header[1..].try_into().ok()?);
        let expires_at = DateTime::from_timestamp(seconds, 0).filter(|at| *at > now)?;
        let nonce: [u8; NONCE_LEN] = bytes[HEADER_LEN..HEADER_LEN + NONCE_LEN].try_into().ok()?;
        Some(Sealed {
            header,
            nonce,
            body: bytes[HEADER_LEN + NONCE_LEN..].to_vec(),
            expires_at,
        })
    }
}

fn header(expires_at: i64) -> [u8; HEADER_LEN] {
    let mut header = [0u8; HEADER_LEN];
    header[0] = VERSION;
    header[1..].copy_from_slice(&expires_at.to_be_bytes());
    header
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> TicketKey {
        TicketKey::new(&TicketKey::random_bytes().expect("random")).expect("key")
    }

    fn ticket(owner: &str, seconds: i64) -> Ticket {
        Ticket {
            owner: Caller::new(owner).expect("caller"),
            expires_at: DateTime::from_timestamp(Utc::now().timestamp() + seconds, 0)
                .expect("time"),
        }
    }

    #[test]
    fn a_sealed_ticket_opens_with_its_key_only() {
        let (key, other) = (key(), key());
        let issued = ticket("alice", 600);
        let sealed = key.seal(&issued).expect("sealed");
        assert!(!sealed.contains("alice"));
        let parsed = || Sealed::parse(&sealed, Utc::now()).expect("well formed");
        assert_eq!(key.open(parsed()), Some(issued));
        assert_eq!(other.open(parsed()), None);
    }

    #[test]
    fn any_changed_bit_is_refused() {
        let key = key();
        let sealed = key.seal(&ticket("alice", 600)).expect("sealed");
        let bytes = URL_SAFE_NO_PAD.decode(&sealed).expect("base64url");
        for at in 0..bytes.len() {
            let mut changed = bytes.clone();
            changed[at] ^= 1;
            let changed = URL_SAFE_NO_PAD.encode(changed);
            let opened = Sealed::parse(&changed, Utc::now()).and_then(|s| key.open(s));
            assert_eq!(opened, None, "byte {at} changed, still opened");
        }
    }

    #[test]
    fn junk_and_expired_tickets_are_refused_before_any_key() {
        let key = key();
        let expired = key.seal(&ticket("alice", -1)).expect("sealed");
        let longest = key
            .seal(&ticket(&"a".repeat(MAX_CALLER_LEN), 600))
            .expect("sealed");
        assert!(longest.len() <= MAX_TICKET_CHARS);
        assert!(Sealed::parse(&longest, Utc::now()).is_some());
        for junk in [
            "",
            "x",
            "a.b",
            &expired,
            &"A".repeat(MAX_TICKET_CHARS + 1),
            &URL_SAFE_NO_PAD.encode([VERSION + 1; 40]),
        ] {
            assert!(Sealed::parse(junk, Utc::now()).is_none(), "{junk:?} parsed");
        }
    }
}
