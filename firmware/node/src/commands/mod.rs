pub mod audit;
pub mod identity;
pub mod version;
