DROP TABLE change_head;
DROP TABLE order_changes;
