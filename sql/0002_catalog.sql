-- Wealth Coach AI: the shared allocation catalogue, exactly as shared/catalog.json has it.
-- Ids are fixed so they stay the same on every install (clients may keep them).
-- target_percentage_bp is target_percentage in basis points (10.0 % = 1000).

-- freedom
INSERT INTO allocation_categories (id, name, label, icon, icon_color, description, target_percentage_bp, sort_order) VALUES
    ('cdf6ee4c-20ba-4026-8aff-038c0aed00b0', 'freedom', 'FREEDOM (Financial Independence)', '🏦', 'blue', 'Build your financial freedom fund for long-term wealth', 1000, 1);
INSERT INTO allocation_types (id, category_id, name, description, purpose, sort_order) VALUES
    ('e8b01ca4-4671-44c3-a487-7d24253c09d4', 'cdf6ee4c-20ba-4026-8aff-038c0aed00b0', 'Bank Deposits', 'Fixed deposits, savings accounts', 'Secure, low-risk savings', 1),
    ('aa39fade-32b6-461a-8d68-20098f17855c', 'cdf6ee4c-20ba-4026-8aff-038c0aed00b0', 'Mutual Funds', 'Equity, debt, hybrid funds', 'Diversified investments', 2),
    ('34e41c87-8d65-42ef-939d-3841581b2efe', 'cdf6ee4c-20ba-4026-8aff-038c0aed00b0', 'Shares & Stock', 'Direct equity investments', 'High-growth potential', 3),
    ('80c8b326-26e1-4b4c-9e82-97f991b52aec', 'cdf6ee4c-20ba-4026-8aff-038c0aed00b0', 'Real Estate', 'Property investments', 'Long-term asset building', 4),
    ('8605a8f7-3cb6-4be4-a65e-d1b8a8503b81', 'cdf6ee4c-20ba-4026-8aff-038c0aed00b0', 'Capital in New Business', 'Entrepreneurial investments', 'Business ventures', 5);

-- health
INSERT INTO allocation_categories (id, name, label, icon, icon_color, description, target_percentage_bp, sort_order) VALUES
    ('e9694ff0-b955-4258-9892-456b00065ba7', 'health', 'HEALTH (Healthcare & Wellness)', '❤️', 'red', 'Provision for Emergencies', 1000, 2);
INSERT INTO allocation_types (id, category_id, name, description, purpose, sort_order) VALUES
    ('c2d06691-7ffd-40db-af3e-a2f246a12979', 'e9694ff0-b955-4258-9892-456b00065ba7', 'Mediclaim/Accident Policies', 'Health insurance premiums', 'Medical coverage', 1),
    ('01ae2544-dadb-4edc-af7b-68321da30046', 'e9694ff0-b955-4258-9892-456b00065ba7', 'Dr. Consultation/Medicines', 'Regular medical expenses', 'Routine healthcare', 2),
    ('9b162d35-e8e9-49cc-8d9b-9e9a29530663', 'e9694ff0-b955-4258-9892-456b00065ba7', 'Hospitalization', 'Emergency medical care costs', 'Critical care fund', 3),
    ('a2338886-db8f-4820-b196-ae170d7e110d', 'e9694ff0-b955-4258-9892-456b00065ba7', 'Elderly People Care Exp. With Treatment', 'Senior care expenses', 'Elder healthcare', 4),
    ('0b6e148e-cecb-4b20-a5d4-73a0f447c632', 'e9694ff0-b955-4258-9892-456b00065ba7', 'Repairs of House Hold & Disinfection', 'Home safety & hygiene', 'Preventive care', 5);

-- spending
INSERT INTO allocation_categories (id, name, label, icon, icon_color, description, target_percentage_bp, sort_order) VALUES
    ('ca8c1658-c33a-4940-869f-0d39aca3cba2', 'spending', 'SPENDING (Lifestyle)', '🛍️', 'green', 'Spending for Life Style', 5000, 3);
INSERT INTO allocation_types (id, category_id, name, description, purpose, sort_order) VALUES
    ('0c2cae4e-79c6-4b30-a309-8e497d6bfdcb', 'ca8c1658-c33a-4940-869f-0d39aca3cba2', 'Marriage/Social Event Expenses', 'Celebrations & ceremonies', 'Major life events', 1),
    ('33317c48-720e-42e9-acf3-f0a0ef500a62', 'ca8c1658-c33a-4940-869f-0d39aca3cba2', 'College Education Fees', 'Higher education costs', 'Educational investment', 2),
    ('9e123e6a-ef74-4311-ab55-5c1a0cac42f5', 'ca8c1658-c33a-4940-869f-0d39aca3cba2', 'LIC Premiums for Future Events', 'Life insurance', 'Future security', 3),
    ('0502f4ca-28f5-4107-8e1c-86053d1922b6', 'ca8c1658-c33a-4940-869f-0d39aca3cba2', 'Consumer Durables/Gym Exp.', 'Appliances & fitness', 'Quality of life', 4),
    ('afa23585-824d-4df6-9e8d-bb196e83afda', 'ca8c1658-c33a-4940-869f-0d39aca3cba2', 'Gold Jewellery/Mobile/Laptop/Computer', 'Electronics & jewelry', 'Assets & tools', 5),
    ('2490007b-cbce-4bd6-9909-d6882640f639', 'ca8c1658-c33a-4940-869f-0d39aca3cba2', 'Vacation/Holidays', 'Travel & tourism', 'Life experiences', 6);

-- learning
INSERT INTO allocation_categories (id, name, label, icon, icon_color, description, target_percentage_bp, sort_order) VALUES
    ('552102e8-891f-4f43-a14c-54a151eebcd6', 'learning', 'LEARNING (Education & Development)', '🎓', 'gold', 'Invest in education and skill development', 1000, 4);
INSERT INTO allocation_types (id, category_id, name, description, purpose, sort_order) VALUES
    ('56c9a75a-10d5-42c9-a837-dd577cd1c777', '552102e8-891f-4f43-a14c-54a151eebcd6', 'School Fees', 'Primary/secondary education', 'Basic education', 1),
    ('c8773bdc-c9cb-4274-96a3-72867400351a', '552102e8-891f-4f43-a14c-54a151eebcd6', 'College Fees', 'Higher education', 'Degree programs', 2),
    ('f0d46f06-4bac-445f-afcc-f651a38e6a05', '552102e8-891f-4f43-a14c-54a151eebcd6', 'Books for Personal/Professional/Buss. Dev.', 'Learning materials', 'Knowledge building', 3),
    ('7f564bdc-b7dd-4b08-ac02-dee333aeeef3', '552102e8-891f-4f43-a14c-54a151eebcd6', 'Hobby Classes for Any Member', 'Skill development', 'Personal growth', 4),
    ('c592d9b0-883e-41cd-992e-76f12dd184e3', '552102e8-891f-4f43-a14c-54a151eebcd6', 'Seminars, Conference, Workshop', 'Professional development', 'Career advancement', 5),
    ('2d3e228f-c3a1-4287-bb93-d584ebd63699', '552102e8-891f-4f43-a14c-54a151eebcd6', 'Spiritual Retreat, Yoga', 'Wellness education', 'Mental health', 6),
    ('ad120170-6112-4918-8c6b-f37f62fb7c68', '552102e8-891f-4f43-a14c-54a151eebcd6', 'Tuition Class, Personal Tutor/Coach', 'Private coaching', 'Targeted learning', 7),
    ('f2db53d2-dacc-4be9-8647-06656b5443e0', '552102e8-891f-4f43-a14c-54a151eebcd6', 'Gym Fees', 'Physical fitness', 'Health & wellness', 8);

-- entertainment
INSERT INTO allocation_categories (id, name, label, icon, icon_color, description, target_percentage_bp, sort_order) VALUES
    ('51ea607a-fcc6-4b0f-bf48-2e3fb77bceff', 'entertainment', 'ENTERTAINMENT (Fun & Leisure)', '🎮', 'red', 'Enjoy life with fun activities and entertainment', 500, 5);
INSERT INTO allocation_types (id, category_id, name, description, purpose, sort_order) VALUES
    ('4c4d518f-3f32-45da-ba78-c71bc3074135', '51ea607a-fcc6-4b0f-bf48-2e3fb77bceff', 'Cinema, Drama, Opera', 'Entertainment shows', 'Cultural experiences', 1),
    ('3d1d2bcf-3f22-4149-a62d-4b6d4fd614c2', '51ea607a-fcc6-4b0f-bf48-2e3fb77bceff', 'Outing, Picnic, Restaurant Bills', 'Dining & outdoor activities', 'Social bonding', 2),
    ('accc6386-eb62-4954-b745-61698a53c23c', '51ea607a-fcc6-4b0f-bf48-2e3fb77bceff', 'Body Treatment /Spa/ Massage /Skin Treat', 'Self-care', 'Relaxation & wellness', 3),
    ('d0df02cb-a6f6-4c1e-b4db-1c6ae31a8ec4', '51ea607a-fcc6-4b0f-bf48-2e3fb77bceff', 'Partying with Friends', 'Social gatherings', 'Social connections', 4),
    ('c694f1dd-08d3-4cd4-9568-2efa0ace3bc9', '51ea607a-fcc6-4b0f-bf48-2e3fb77bceff', 'Ice Cream, Coffee House, Fast Foods, etc.', 'Casual dining', 'Simple pleasures', 5);

-- contribution
INSERT INTO allocation_categories (id, name, label, icon, icon_color, description, target_percentage_bp, sort_order) VALUES
    ('b3fd8446-4e15-48e4-aee3-afc896fff859', 'contribution', 'CONTRIBUTION (Charity & Giving)', '🤲', 'blue', 'Give back to society and make a difference', 500, 6);
INSERT INTO allocation_types (id, category_id, name, description, purpose, sort_order) VALUES
    ('203201f7-3fff-42b9-aa82-1565ec37fbd2', 'b3fd8446-4e15-48e4-aee3-afc896fff859', 'Charity Donations', 'Monetary donations', 'Direct financial support', 1),
    ('2baf79bd-2ca4-4920-86e3-94d1ce15560c', 'b3fd8446-4e15-48e4-aee3-afc896fff859', 'Community Support', 'Local community help', 'Neighborhood assistance', 2),
    ('98c30b6c-23cf-4701-95b9-99df39f0bf35', 'b3fd8446-4e15-48e4-aee3-afc896fff859', 'NGO Contributions', 'Non-profit organizations', 'Organized social work', 3),
    ('fe16729b-3d2d-4bbb-9b7b-2b2b95fa853e', 'b3fd8446-4e15-48e4-aee3-afc896fff859', 'Social Causes', 'Social welfare initiatives', 'Systemic change support', 4),
    ('e162b82c-7f99-4988-82a2-1ccdc3cc97bf', 'b3fd8446-4e15-48e4-aee3-afc896fff859', 'Volunteering Expenses', 'Cost of volunteering activities', 'Active participation', 5);
