pub mod audit;
pub mod directory;
pub mod enroll;
pub mod grant;
pub mod hub;
pub mod identity;
pub mod version;
pub mod wireguard_bench;
