"""Insights: segments, journeys and funnels, reports, customer needs, and the scheduled refresh that keeps
each profile's measures, needs, segments and journey stages current."""
