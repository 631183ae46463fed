-- The pgTAP helpers (schema tests) belong to test databases only: scripts/test installs
-- them from sql/test/ after the migrations. A database this stand-in prepares for
-- development has none (an older one loses them here): they could impersonate any user.
drop schema if exists tests cascade;
