//! Authentication primitives, HTTP-free: argon2 hashing of passwords and PINs, random
//! bearer tokens and SADs stored as hashes, TOTP (RFC 6238).

pub mod otp;
pub mod password;
pub mod token;
