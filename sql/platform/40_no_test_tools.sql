-- pgTAP and its helpers (schema tests) belong to test databases only: scripts/test installs
-- them from sql/test/ after the migrations. A database this stand-in prepares for
-- development has neither (an older one loses them here): the helpers could impersonate
-- any user, and Supabase's advisors would flag both.
drop schema if exists tests cascade;
drop extension if exists pgtap;
