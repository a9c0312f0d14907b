//! Demo data like the original's seeder made: its ten customers, ten
//! products and five statuses, 1 to 5 items of quantity 1 to 5.

use rand::Rng;
use rand::seq::IndexedRandom;

use crate::{Item, Order, OrderId, OrderStatus, Timestamp, Version};

pub const CUSTOMERS: [&str; 10] = [
    "Alice Johnson",
    "Ben Carter",
    "Chloe Ramirez",
    "Darius Lee",
    "Emma Patel",
    "Felix Wright",
    "Grace Kim",
    "Hector Gomez",
    "Isla Chen",
    "Javier Torres",
];

pub const PRODUCTS: [&str; 10] = [
    "Wireless Mouse",
    "Mechanical Keyboard",
    "USB-C Hub",
    "Laptop Stand",
    "Noise Cancelling Headphones",
    "Ergonomic Chair",
    "4K Monitor",
    "Portable SSD",
    "Webcam",
    "Desk Lamp",
];

pub const STATUSES: [OrderStatus; 5] = [
    OrderStatus::Received,
    OrderStatus::Processing,
    OrderStatus::Shipped,
    OrderStatus::Delivered,
    OrderStatus::Cancelled,
];

pub const MAX_SEED: u64 = 100_000;

/// One random order, created `now`.
pub fn order(rng: &mut impl Rng, now: Timestamp) -> Order {
    let item_count = rng.random_range(1..=5);
    Order {
        id: OrderId::new(),
        customer_name: (*CUSTOMERS.choose(rng).expect("not empty")).to_owned(),
        status: *STATUSES.choose(rng).expect("not empty"),
        items: (0..item_count)
            .map(|_| Item {
                name: (*PRODUCTS.choose(rng).expect("not empty")).to_owned(),
                quantity: rng.random_range(1..=5),
            })
            .collect(),
        created_at: now,
        updated_at: now,
        version: Version::FIRST,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fake_orders_follow_the_originals_rules() {
        let now = Timestamp::now();
        let mut rng = rand::rng();
        let orders: Vec<Order> = (0..500).map(|_| order(&mut rng, now)).collect();
        assert_eq!(orders.len(), 500);
        for order in &orders {
            assert!(CUSTOMERS.contains(&order.customer_name.as_str()));
            assert!(STATUSES.contains(&order.status));
            assert!((1..=5).contains(&order.items.len()));
            for item in &order.items {
                assert!(PRODUCTS.contains(&item.name.as_str()));
                assert!((1..=5).contains(&item.quantity));
            }
        }
        let mut ids: Vec<_> = orders.iter().map(|o| o.id).collect();
        ids.dedup();
        assert_eq!(ids.len(), 500);
    }
}
