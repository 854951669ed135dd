//! FAME CP-ABE on BLS12-381, the SMQTT policy language, and sealed hybrid ciphertexts.
#![warn(missing_docs)]

pub mod encoding;
pub mod error;
mod fame;
mod fixed_base;
mod hash;
#[doc(hidden)]
pub mod hazmat;
mod kdf;
mod keys;
mod label;
pub mod limits;
mod lsss;
mod msm;
mod parallel;
pub mod policy;
pub mod seal;

pub use error::{Error, Limit, Result};
pub use fame::setup;
pub use keys::{Capsule, DataKey, MasterKey, ParamsId, PublicKey, UserKey};
pub use policy::{Attribute, AttributeSet, CompareOp, KeyAttribute, Policy};
