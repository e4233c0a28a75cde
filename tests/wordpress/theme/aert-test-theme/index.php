<?php
/**
 * The only template of the test theme: enough markup for wp_head() and
 * wp_footer() to print the scripts (and the bridge's wsUrl override).
 *
 * @package AERT_Test_Theme
 */

?><!DOCTYPE html>
<html <?php language_attributes(); ?>>
<head>
<meta charset="<?php bloginfo( 'charset' ); ?>">
<?php wp_head(); ?>
</head>
<body <?php body_class(); ?>>
<h1 id="aert-test-theme"><?php bloginfo( 'name' ); ?></h1>
<?php
if ( have_posts() ) {
	while ( have_posts() ) {
		the_post();
		the_title( '<h2>', '</h2>' );
	}
}
wp_footer();
?>
</body>
</html>
