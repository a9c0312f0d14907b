DROP TABLE list_chunks;
