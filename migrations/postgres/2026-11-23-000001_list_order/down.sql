DROP INDEX credentials_user_order;
